#!/usr/bin/env bash
# A real SLURM test (issue 13): start a one-node SLURM cluster on this machine (Debian's
# slurmctld, slurmd, munge; installed with apt-get when missing) and run configs/ci.yaml
# through workflow/profiles/slurm, every training run as a SLURM job.
#
#   make slurm-check                       # or: bash workflow/scripts/slurm_check.sh
#
# Needs root (or sudo) for apt-get and the daemons, Debian/Ubuntu, a machine without a SLURM
# setup of its own (no /etc/slurm/slurm.conf), and the project's Python environment ($VENV,
# default .venv: snakemake and snakemake-executor-plugin-slurm). The cluster's state, logs and
# munge socket live in a temporary folder (ports 16817/16818); its slurm.conf is written to
# /etc/slurm/slurm.conf, where `srun` inside a job looks for it, and removed afterwards. The
# pipeline runs in a copy of the tracked files; all of it is removed afterwards (kept, and
# named, when the check fails). Exit status 0: every job went through
# SLURM and completed; 2: SLURM could not be installed or started; otherwise snakemake's.
# Not run in CI.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
PACKAGES=(slurmctld slurmd slurm-client munge)
fail() { echo "slurm_check: $*" >&2; exit 2; }
say() { echo "slurm_check: $*" >&2; }

[[ -x "$VENV/bin/snakemake" ]] || fail "no snakemake in $VENV/bin (run 'make venv', or set VENV)"
SUDO=""
AS_MUNGE=(runuser -u munge --)
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail "needs root or sudo (apt-get, slurmd, munged)"
    SUDO=sudo
    AS_MUNGE=(sudo -u munge)
fi

missing=0
for tool in slurmctld slurmd munged sbatch squeue sinfo; do
    command -v "$tool" >/dev/null || missing=1
done
if [[ $missing -eq 1 ]]; then
    command -v apt-get >/dev/null || fail "SLURM is not installed and there is no apt-get; install ${PACKAGES[*]} and rerun"
    say "installing ${PACKAGES[*]} with apt-get"
    if ! $SUDO apt-get update -q || ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
            --no-install-recommends "${PACKAGES[@]}"; then
        fail "apt-get could not install ${PACKAGES[*]} (see its output above: no network or no package registry?); install them and rerun"
    fi
fi
[[ -r /etc/munge/munge.key ]] || $SUDO test -r /etc/munge/munge.key \
    || fail "/etc/munge/munge.key is missing (the munge package creates it: reinstall munge)"

CONF=/etc/slurm/slurm.conf
[[ -e $CONF ]] && fail "$CONF exists: this machine has a SLURM setup of its own; run the check on a machine without one"

WORK=$(mktemp -d /tmp/ghuda-slurm-check.XXXXXX)
chmod 755 "$WORK"
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 9 / 10 ))
export SLURM_CONF=$CONF
ok=0

cleanup() {
    for pidfile in "$WORK/slurmd.pid" "$WORK/slurmctld.pid" "$WORK/munge/munged.pid"; do
        [[ -s $pidfile ]] && $SUDO kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    [[ -e $WORK/slurm.conf ]] && $SUDO rm -f "$CONF"
    if [[ $ok -eq 1 ]]; then
        $SUDO rm -rf "$WORK"
    else
        say "failed; logs and state kept in $WORK"
    fi
}
trap cleanup EXIT

mkdir -p "$WORK/munge" "$WORK/state" "$WORK/spool"
$SUDO chown munge: "$WORK/munge"
"${AS_MUNGE[@]}" /usr/sbin/munged --socket="$WORK/munge/munge.socket" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
    --seed-file="$WORK/munge/munged.seed" --key-file=/etc/munge/munge.key \
    || fail "munged did not start (log: $WORK/munge/munged.log)"

cat > "$WORK/slurm.conf" <<EOF
ClusterName=ghudacheck
SlurmctldHost=$HOST
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.socket
CredType=cred/munge
SlurmUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=3600
ReturnToService=2
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
$SUDO mkdir -p "$(dirname "$CONF")"
$SUDO cp "$WORK/slurm.conf" "$CONF"

$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld -f "$SLURM_CONF" \
    || fail "slurmctld did not start (log: $WORK/slurmctld.log)"
$SUDO env SLURM_CONF="$SLURM_CONF" slurmd -f "$SLURM_CONF" \
    || fail "slurmd did not start (log: $WORK/slurmd.log)"
for _ in $(seq 60); do
    [[ $(sinfo -h -o %t 2>/dev/null) == idle ]] && break
    sleep 1
done
[[ $(sinfo -h -o %t 2>/dev/null) == idle ]] \
    || fail "the node did not become idle: $(sinfo 2>&1 | tail -2) (logs in $WORK)"
say "one-node SLURM up: $(sinfo -h -o '%P %D %c CPUs %m MB %t')"

# The pipeline in a copy of the tracked files (results/ and data/ stay out of the checkout).
mkdir "$WORK/repo"
git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$WORK/repo")
cd "$WORK/repo"
export PATH="$VENV/bin:$PATH" PYTHONPATH="$WORK/repo/src${PYTHONPATH:+:$PYTHONPATH}"
# No account (accounting is off); squeue reports job states (MinJobAge keeps finished jobs).
snakemake --configfile configs/ci.yaml --profile workflow/profiles/slurm \
    --default-resources "slurm_account=''" slurm_partition=check \
    --slurm-status-command squeue --latency-wait 5 --local-cores 1

jobs=$(squeue -h --states=all -o '%i %j %T')
echo "$jobs" | sed 's/^/  /' >&2
n=$(echo "$jobs" | grep -c . || true)
bad=$(echo "$jobs" | grep -vc ' COMPLETED$' || true)
[[ $n -gt 0 ]] || { say "snakemake finished but no job went through SLURM"; exit 1; }
[[ $bad -eq 0 ]] || { say "$bad of $n SLURM jobs did not complete"; exit 1; }
[[ -s results/ci/tables/README.md ]] || { say "results/ci/tables/README.md missing"; exit 1; }
ok=1
say "passed: $n SLURM jobs completed; configs/ci.yaml ran through workflow/profiles/slurm"
