# Sourced by scripts/build-libvirt.sh and scripts/build-busybox.sh: both build a Debian source
# package. install_build_deps installs what the build needs and makes sure `apt-get source`
# can work: it needs deb-src entries, which ensure_deb_src adds, in a file of their own, for
# the Debian mirror this machine already uses, unless some source list has them already.
# download_source fetches a source package into the current directory. Needs a log function.

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

# install_build_deps WHO PKG...: installs the PKGs not installed yet (after apt-get update when
# anything is missing or the deb-src entries were just added).
install_build_deps() {
  local who=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  need_update=
  ensure_deb_src "$who"
  if [ -n "$need_update" ] || [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# download_source PKG: `apt-get source --download-only PKG` into the current directory.
download_source() {
  apt-get source -qq --download-only "$1" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
}
