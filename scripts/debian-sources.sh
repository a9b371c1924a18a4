# Sourced by scripts/build-libvirt.sh and scripts/build-busybox.sh: both build a Debian source
# package, and `apt-get source` needs deb-src entries. ensure_deb_src adds them, in a file of
# their own, for the Debian mirror this machine already uses, unless some source list has them
# already; it sets need_update=1 when it wrote the file (the caller runs apt-get update).
# Needs a log function.

SRC_LIST=${SRC_LIST:-/etc/apt/sources.list.d/virtnet-deb-src.sources}

have_deb_src() {
  grep -rqsE '^(deb-src[[:space:]]|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/
}

# The first `deb` URI of the configured sources (deb822 or one-line format). One line only:
# under `pipefail` a `grep -m1 … || echo default` printed both the match and the default
# (grep -m1 closing the pipe early fails the pipeline), which made a broken sources file.
mirror() {
  local m
  m=$({ grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/'
  } | grep -v -- '-security' | grep 'debian' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# ensure_deb_src WHO: WHO names the script in the file's comment.
ensure_deb_src() {
  have_deb_src && return 0
  local m
  m="$(mirror)"
  log "adding deb-src for $m in $SRC_LIST"
  cat >"$SRC_LIST" <<SRC
# Added by virtnet's $1: source packages for the tests.
Types: deb-src
URIs: $m
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
}
