#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (Debian's slurm-wlm + munge, run as root), so that AiiDA's
# `core.slurm` scheduler can be tested for real (tests/workflows/test_slurm_scheduler.py).
# Installs the packages when apt-get is available and they are missing; idempotent (a running cluster is kept).
# Usage (as root): bash scripts/start-local-slurm.sh      → prints "slurm ready" once `sbatch` accepts jobs.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then echo "start-local-slurm: needs root (slurmd and munged run as root here)" >&2; exit 1; fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  echo "installing slurm-wlm and munge"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >/dev/null
fi

node="$(hostname -s)"
cpus="$(nproc)"
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
conf=/etc/slurm/slurm.conf
cat > "$conf.new" <<CONF
# written by aiida-mlepi scripts/start-local-slurm.sh: one node, no cgroups, no accounting
ClusterName=mlepi-local
SlurmctldHost=${node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName=${node} CPUs=${cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if ! cmp -s "$conf.new" "$conf" 2>/dev/null; then mv "$conf.new" "$conf"; restart=1; else rm "$conf.new"; restart=0; fi

# munge: the Debian package creates /etc/munge/munge.key; make one if it is missing
if [ ! -s /etc/munge/munge.key ]; then
  (command -v mungekey >/dev/null 2>&1 && mungekey --create --force) || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

if [ "$restart" = 1 ]; then pkill -x slurmctld 2>/dev/null || true; pkill -x slurmd 2>/dev/null || true; sleep 1; fi
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "slurm ready (node ${node}, ${cpus} CPUs)"; exit 0; fi
  scontrol update nodename="${node}" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "start-local-slurm: Slurm did not become ready; see /var/log/slurm/*.log" >&2
sinfo >&2 || true
exit 1
