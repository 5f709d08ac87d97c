#!/usr/bin/env bash
# System packages emo needs beyond Python: R with lme4/lmerTest/survival (spatial
# validation and survival checks, through rpy2), Slurm + munge (the test suite runs
# a real single-node cluster) and Chromium (the test suite opens the Snakemake report
# in a headless browser: tests/workflow/test_report_browser.py). Installs with apt when run as root on Debian/Ubuntu;
# otherwise prints the exact commands and exits non-zero.
set -euo pipefail

PACKAGES=(r-base-core r-base-dev r-cran-lme4 r-cran-lmertest r-cran-survival
          slurmctld slurmd slurm-client munge gcc
          chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    cat >&2 <<MSG
emo needs these Debian packages, which are not installed: ${missing[*]}
Run as root (or ask your administrator):
    sudo apt-get update
    sudo apt-get install -y ${missing[*]}
then run make again. (On a cluster without root, use the conda environments in envs/.)
MSG
    exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
