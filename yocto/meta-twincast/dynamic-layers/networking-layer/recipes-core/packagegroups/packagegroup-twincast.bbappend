# The epoch-locked timeline needs a disciplined clock (docs/); chrony is in meta-networking.
# Without it, systemd-timesyncd (openembedded-core) keeps the clock.
RDEPENDS:${PN} += "chrony"
