# Sourced by the setup scripts: install_debs installs the Debian packages
# whose marker file is missing, given as package:/path pairs, in one apt run.
install_debs() {
  local need=() pair
  for pair in "$@"; do
    [ -e "${pair#*:}" ] || need+=("${pair%%:*}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  printf '[setup] installing Debian packages: %s\n' "${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
