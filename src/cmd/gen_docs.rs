//! `twincast generate-docs DIR` (hidden): the man pages (clap_mangen: `twincast.1` and one
//! `twincast-<command>.1` per command) and shell completions (clap_complete: bash, zsh, fish)
//! from the command line's own definition, so they cannot drift from it. scripts/build-deb
//! puts them into the Debian package.

use std::path::Path;
use std::process::ExitCode;

use clap_complete::Shell;

/// Writes every file into `dir` (created when missing).
pub fn write(mut cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    // Completions offer the visible commands only (this one is hidden): the same command line
    // without the hidden subcommands.
    let mut visible = clap::Command::new(cmd.get_name().to_string())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(v) = cmd.get_version() {
        visible = visible.version(v.to_string());
    }
    if let Some(a) = cmd.get_about() {
        visible = visible.about(a.clone());
    }
    cmd.build();
    let mut written = Vec::new();
    let mut page = |c: &clap::Command, name: String| -> std::io::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(c.clone())
            .title(name.to_uppercase())
            .section("1")
            .manual("twincast")
            .render(&mut out)?;
        std::fs::write(dir.join(format!("{name}.1")), out)?;
        written.push(format!("{name}.1"));
        Ok(())
    };
    page(&cmd, "twincast".to_string())?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("twincast-{}", sub.get_name());
        let sub = sub.clone().name(name.clone());
        page(&sub, name)?;
    }
    for (shell, file) in [
        (Shell::Bash, "twincast.bash"),
        (Shell::Zsh, "_twincast"),
        (Shell::Fish, "twincast.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut visible, "twincast", &mut out);
        std::fs::write(dir.join(file), out)?;
        written.push(file.to_string());
    }
    Ok(written)
}

pub fn main(cmd: clap::Command, dir: &Path) -> ExitCode {
    match write(cmd, dir) {
        Ok(files) => {
            println!(
                "wrote {} files into {}: {}",
                files.len(),
                dir.display(),
                files.join(" ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twincast generate-docs: {}: {e}", dir.display());
            // The output cannot be written.
            crate::exit::code(crate::exit::EX_CANTCREAT)
        }
    }
}
