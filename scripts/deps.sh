# Installs the Debian packages tagwatch needs to build and test, when missing.
# Sourced by scripts/demo and scripts/test, so each stays one command.
#   pkg-config, libssl-dev: git2 links the system OpenSSL for HTTPS and SSH remotes
#   gcc, make: libgit2 and aws-lc are C and build from source
#   git: the tests' git servers (git daemon) and checks (interpret-trailers, fsck)
#   python3-venv: the tests' moto server runs in a virtualenv
#   nginx, fcgiwrap: the tests' smart-HTTP git server (git http-backend behind basic auth)
#   openssh-server, openssh-client: the tests' SSH git server and its keys
#   openssl: the tests' private CA for the HTTPS git server
#   nodejs, npm: the Argo CD CRD schemas (npm) that check manifests/examples/
ensure_debian_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
