//! Configuration: TOML file → validated `Config`. (being written)
