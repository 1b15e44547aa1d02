# Shared helpers for scripts/*.sh (sourced).
step() { printf '\n==> %s\n' "$*"; }

ensure_toolchain() {
  command -v cargo >/dev/null || { echo "cargo (Rust stable) is required" >&2; exit 2; }
  command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }
  # Build dependencies: the connector links libudev (udev crate), found via pkg-config.
  ensure_packages libudev-dev pkg-config
}

# Debian packages the tests need (idempotent; needs root or sudo).
ensure_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}
