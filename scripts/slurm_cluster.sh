#!/usr/bin/env bash
# A real single-node Slurm cluster on this host, for CI and developers (tests marked `slurm`).
# Usage: bash scripts/slurm_cluster.sh [start|stop|status]     (default: start; needs root or sudo)
#
#   start   installs Debian's slurm-wlm and munge if missing, creates a munge key if missing,
#           writes /etc/slurm/slurm.conf (cluster "lab", one node = this host, partition "debug"),
#           starts munged, slurmctld and slurmd as plain daemons (no systemd needed) and waits
#           until the node is usable. Idempotent: when everything is already up it returns at once.
#   stop    stops slurmd, slurmctld and munged (the ones this script's pid files name).
#   status  prints the daemons' state and `sinfo`; exits 0 only when the node accepts jobs.
#
# Built for containers and VMs without systemd or cgroup support: processes are tracked with
# proctrack/linuxproc, no task/cgroup plugin, no accounting storage, daemons and jobs run as root.
# Without accounting `sacct` does not work: submitit still gets results and Python exceptions
# through its result files, but a job killed without writing one (scancel, OOM, time limit) stays
# UNKNOWN to it, so wait on jobs with a deadline.
# Environment: SLURM_CLUSTER_TIMEOUT (seconds to wait for the node, default 60),
#              SLURM_CLUSTER_FORCE=1 (overwrite an /etc/slurm/slurm.conf this script did not write).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# Managed by scripts/slurm_cluster.sh"
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/spool/slurmd
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_LOG=/var/log/munge/munged.log
TIMEOUT=${SLURM_CLUSTER_TIMEOUT:-60}

log() { echo "slurm_cluster: $*"; }

show_logs() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" "$MUNGE_LOG"; do
        [ -f "$f" ] || continue
        echo "----- last lines of $f -----" >&2
        # (skip the harmless "cannot load PMIx" lines every Slurm daemon logs at start here)
        grep -v -e 'pmix' -e 'MPI: Cannot create context' "$f" | tail -n 25 >&2 || true
    done
}

die() {
    echo "slurm_cluster: error: $*" >&2
    show_logs
    exit 1
}

# --- processes ------------------------------------------------------------------------------

pid_alive() {  # pid_alive PIDFILE NAME: the pid file names a live process called NAME
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME
    local pid i
    pid_alive "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(cat "$1")
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || { rm -f "$1"; return 0; }
        sleep 0.2
    done
    log "$2 (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

# --- node state -----------------------------------------------------------------------------

node_state() {  # the node's state as sinfo prints it (idle, mixed, down*, drained, ...), or ""
    timeout 10 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n 1 || true
}

usable_state() {  # a state in which the node takes jobs ("*" = not responding is not one)
    case "$1" in
        idle | mixed | allocated | completing | planned) return 0 ;;
        *) return 1 ;;
    esac
}

# sinfo alone can still say "idle" for a while after slurmd died (the controller has not noticed
# yet), so also ask this host's slurmd directly.
slurmd_answers() { timeout 10 scontrol show slurmd >/dev/null 2>&1; }

node_usable() { usable_state "$(node_state)" && slurmd_answers; }

# --- installation ---------------------------------------------------------------------------

install_packages() {
    local missing="" b created_policy=0
    for b in slurmctld slurmd sinfo sbatch munged munge; do
        command -v "$b" >/dev/null 2>&1 || missing="$missing $b"
    done
    [ -z "$missing" ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing$missing and no apt-get to install slurm-wlm and munge"
    log "installing slurm-wlm and munge (missing:$missing)"
    # Keep the packages' init scripts from trying to start daemons during the install: there is
    # no init system to start them here, and we start them ourselves below.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                slurm-wlm munge
    } >/tmp/slurm_cluster_apt.log 2>&1 || rc=$?
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ "$rc" != 0 ]; then
        tail -n 30 /tmp/slurm_cluster_apt.log >&2
        die "apt-get install slurm-wlm munge failed (exit $rc; full log: /tmp/slurm_cluster_apt.log)"
    fi
    for b in slurmctld slurmd sinfo sbatch munged munge; do
        command -v "$b" >/dev/null 2>&1 || die "$b is still missing after installing slurm-wlm and munge"
    done
}

# --- munge ----------------------------------------------------------------------------------

start_munge() {
    if [ ! -s "$MUNGE_KEY" ]; then
        log "creating munge key $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    local owner=root
    id munge >/dev/null 2>&1 && owner=munge
    mkdir -p "$MUNGE_RUN" /var/lib/munge /var/log/munge
    chown "$owner:" "$MUNGE_KEY" "$MUNGE_RUN" /var/lib/munge /var/log/munge
    chmod 0400 "$MUNGE_KEY"
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 "$MUNGE_RUN"
    munge_works && return 0
    log "starting munged"
    # --force: start even if a munged that died left its socket behind.
    if [ "$owner" = munge ]; then
        runuser -u munge -- munged --force || die "munged failed to start"
    else
        munged --force || die "munged failed to start"
    fi
    local i
    for i in $(seq 1 50); do
        munge_works && return 0
        sleep 0.2
    done
    die "munged started but 'munge -n | unmunge' still fails"
}

# --- configuration --------------------------------------------------------------------------

resolve_hostname() {
    HOST=$(hostname -s)
    [ -n "$HOST" ] || die "hostname -s is empty"
    if ! getent hosts "$HOST" >/dev/null 2>&1; then
        log "adding '127.0.0.1 $HOST' to /etc/hosts (the hostname did not resolve)"
        echo "127.0.0.1 $HOST" >>/etc/hosts
    fi
}

write_config() {  # sets CONFIG_CHANGED=1 when slurm.conf was (re)written
    CONFIG_CHANGED=0
    local hw cpus mem def_mem wanted
    # e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24018"
    hw=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') || die "slurmd -C did not describe this node"
    hw=$(sed -e "s/^NodeName=[^ ]* //" <<<"$hw")
    cpus=$(grep -o 'CPUs=[0-9]*' <<<"$hw" | cut -d= -f2)
    mem=$(grep -o 'RealMemory=[0-9]*' <<<"$hw" | cut -d= -f2)
    [ -n "$cpus" ] && [ -n "$mem" ] || die "could not read CPUs/RealMemory from slurmd -C: $hw"
    # A job that asks for no memory gets its share per CPU (not the whole node), so jobs can
    # run side by side.
    def_mem=$((mem / cpus))

    wanted="$MARKER: a single-node cluster on this host.
# Rewritten by every 'start'; edit the script, not this file.
ClusterName=lab
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups, systemd or accounting database needed:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
InactiveLimit=0
KillWait=10
MinJobAge=300
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=$HOST NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP"

    mkdir -p "$CONF_DIR"
    if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$wanted" ]; then
        return 0
    fi
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        if [ "${SLURM_CLUSTER_FORCE:-0}" != 1 ]; then
            die "$CONF exists and was not written by this script; refusing to replace it" \
                "(set SLURM_CLUSTER_FORCE=1 to overwrite it; a backup is kept)"
        fi
        cp -p "$CONF" "$CONF.bak.$(date +%Y%m%d%H%M%S)"
    fi
    log "writing $CONF (node $HOST: $hw)"
    printf '%s\n' "$wanted" >"$CONF"
    chmod 0644 "$CONF"
    # slurmd reads cgroup.conf when present; an empty one keeps a packaged default from
    # asking for cgroup plugins this host may not have.
    [ -f "$CONF_DIR/cgroup.conf" ] || printf '%s\n' "$MARKER" >"$CONF_DIR/cgroup.conf"
    CONFIG_CHANGED=1
}

# --- subcommands ----------------------------------------------------------------------------

need_root() {
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "slurm_cluster: error: needs root (or sudo)" >&2; exit 1; }
        exec sudo -E bash "$0" "$@"
    fi
}

cmd_start() {
    local t0=$SECONDS
    install_packages
    resolve_hostname
    start_munge
    write_config
    mkdir -p "$LOG_DIR" "$RUN_DIR" "$STATE_DIR" "$SPOOL_DIR"

    if [ "$CONFIG_CHANGED" = 1 ] && { pid_alive "$CTLD_PID" slurmctld || pid_alive "$SLURMD_PID" slurmd; }; then
        log "configuration changed: restarting the Slurm daemons"
        stop_pidfile "$SLURMD_PID" slurmd
        stop_pidfile "$CTLD_PID" slurmctld
    fi
    if pid_alive "$CTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd && node_usable; then
        log "already up: node $HOST is $(node_state) in partition debug"
        return 0
    fi
    if ! pid_alive "$CTLD_PID" slurmctld; then
        log "starting slurmctld"
        slurmctld || die "slurmctld failed to start"
    fi
    if ! pid_alive "$SLURMD_PID" slurmd; then
        log "starting slurmd"
        slurmd || die "slurmd failed to start"
    fi

    local deadline=$((SECONDS + TIMEOUT)) state resumed=0
    while :; do
        state=$(node_state)
        if usable_state "$state" && slurmd_answers; then
            log "cluster up in $((SECONDS - t0)) s: node $HOST is $state in partition debug"
            return 0
        fi
        case "$state" in
            down | drained | draining | drain | inval)
                # slurmd answers but the node was left down/drained (e.g. by a previous run):
                # bring it back once.
                if [ "$resumed" = 0 ]; then
                    log "node $HOST is $state; resuming it"
                    scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi
                ;;
        esac
        pid_alive "$CTLD_PID" slurmctld || die "slurmctld exited (see its log below)"
        pid_alive "$SLURMD_PID" slurmd || die "slurmd exited (see its log below)"
        [ "$SECONDS" -lt "$deadline" ] ||
            die "node $HOST not usable after ${TIMEOUT}s (state: '${state:-none}'; reason: $(timeout 10 sinfo -h -R -n "$HOST" 2>/dev/null || true))"
        sleep 1
    done
}

cmd_stop() {
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$CTLD_PID" slurmctld
    if [ -f "$MUNGE_RUN/munged.pid" ]; then
        stop_pidfile "$MUNGE_RUN/munged.pid" munged
    fi
    log "stopped"
}

cmd_status() {
    HOST=$(hostname -s)
    local up=0
    for d in "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID" "munged:$MUNGE_RUN/munged.pid"; do
        if pid_alive "${d#*:}" "${d%%:*}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"; else echo "${d%%:*}: not running"; fi
    done
    if command -v sinfo >/dev/null 2>&1; then
        timeout 10 sinfo 2>&1 || true
        node_usable && up=1
    fi
    if [ "$up" = 1 ]; then echo "cluster: up"; else echo "cluster: down"; return 1; fi
}

case "${1:-start}" in
    start) need_root "$@"; cmd_start ;;
    stop) need_root "$@"; cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
