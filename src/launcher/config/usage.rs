//! The launcher's `--help` text.

/// The `--help` text. `man/ciao-launcher.8` documents the same flags with
/// the same defaults (checked by `tests/launcher_flags.rs`).
pub const USAGE: &str = "\
Usage: ciao-launcher [flags]

The compute/network node agent of a ciao cloud: an SSNTP client that starts,
stops and deletes qemu VMs and docker containers on the scheduler's command,
and reports node and instance statistics.

Flags take Go's forms: -flag value, -flag=value, --flag value, --flag=value;
a boolean flag is -flag (true) or -flag=false. Parsing stops at the first
argument that is not a flag (or after --); later arguments are ignored.

SSNTP connection:
  -cacert PATH
        CA certificate (PEM) that signed the server's certificate; in ciao
        this is the scheduler's own certificate. Default: none (the CA and
        node certificates are then looked up in /etc/pki/ciao).
  -cert PATH
        This node's certificate and private key (PEM, as made by ciao-cert);
        its roles (agent, netagent) decide what the launcher does. Used
        together with -cacert. Default: none.
  --server HOST[:PORT]
        Connect to this SSNTP server instead of the addresses named in the
        CA certificate; an IPv6 address goes in brackets. Default: none
        (port 8888).
  --connect-timeout SECONDS
        Deadline of one connection attempt: TCP connect, TLS handshake and
        the server's CONNECTED frame. Default: 30.
  --keepalive SECONDS
        Idle time of the SSNTP connection before the first TCP keep-alive
        probe; probes follow every third of it. With --tcp-user-timeout it
        bounds how long a server that vanished without closing the
        connection goes unnoticed. Default: 30.
  --tcp-user-timeout SECONDS
        How long data or keep-alive probes sent to the server may stay
        unacknowledged before the connection is dropped and the launcher
        reconnects (TCP_USER_TIMEOUT). Default: 90.
  --max-message-size BYTES
        Largest SSNTP (gob) message accepted; a larger one closes the
        connection. Default: 16777216.

Instances:
  --data-root DIR
        Directory for everything the launcher writes: instances/, images/,
        logs/, local/ (node UUID) and lock/. Default: /var/lib/ciao.
  -network BOOL
        Set up tenant networking for VMs and containers (described under
        Networking in the manual). With -network=false no link is touched,
        VMs get qemu user-mode networking, containers docker's default
        network, and STATS report no NICs. Default: true.
  -qemu-virtualisation MODE
        kvm, auto (kvm when /dev/kvm opens, else software) or software (TCG
        emulation, slow). Default: kvm.
  -with-ui MODE
        none, or nc: each VM's serial console on a TCP port bound to
        127.0.0.1 (spice is not supported). Default: none.
  --ovmf PATH
        EFI firmware for VMs that are not legacy-BIOS. Default: the first
        that exists of /usr/share/qemu/OVMF.fd, /usr/share/ovmf/OVMF.fd,
        /usr/share/OVMF/OVMF_CODE.fd.
  --docker-socket PATH
        Docker Engine API socket. Default: /var/run/docker.sock.
  --container-mtu BYTES
        MTU of both ends of a container's veth pair on its tenant bridge
        (68-65535). Default: 1400.
  --bridge-forward BOOL
        When the kernel passes bridged frames through iptables
        (br_netfilter), insert once at start-up an iptables FORWARD rule
        accepting traffic between the launcher's tenant bridges (sbr_+);
        -hard-reset removes it. With false the launcher leaves iptables
        alone. Default: true.
  --docker-plugin MODE
        Where the ciao docker network and IPAM plugin listens, with
        -network=true on a compute node: unix (the root-only socket
        /run/docker/plugins/NAME.sock), unix:PATH, tcp (127.0.0.1:9999 and
        the spec file /etc/docker/plugins/NAME.json, as the original did),
        tcp:ADDR (a loopback address) or none. Default: unix.
  --docker-plugin-name NAME
        The plugin's docker driver and IPAM driver name, which the docker
        networks of tenant subnets use. Default: ciao.
  -ceph_id ID
        Ceph client id for volumes. Default: none (taken from the cluster
        configuration, storage.ceph_id).
  --ceph-conf PATH
        Ceph configuration (with the keyring it names) that qemu's librbd
        reads for volumes. Default: none (librbd's default,
        /etc/ceph/ceph.conf).
  --ceph-timeout SECONDS
        How long a VM's qemu may wait for the ceph monitors when it opens
        its volumes; an unreachable cluster then fails the START with
        launch_failure within about this time. Default: 10.
  --detach-timeout SECONDS
        How long a guest gets to release a hot-unplugged volume before the
        detach fails and the volume stays attached (at least 1). Default: 30.
  --stats-interval SECONDS
        Period of the STATUS and STATS reports (at least 1); instance
        changes are reported sooner. Default: 30.
  --stop-timeout SECONDS
        How long STOP waits after the ACPI power button (or docker stop)
        before forcing the instance off. Default: 30.

Modes:
  -hard-reset
        Kill and delete every instance under the data root, remove the
        launcher's own links, then exit without connecting. Default: false.
  -simulation
        Fake virtualiser: no qemu or docker, instances become active after
        --simulation-delay; no single-instance lock. Default: false.
  --simulation-delay MS|MIN-MAX
        With -simulation, the delay in milliseconds before a started
        instance becomes active: fixed, or random in MIN-MAX. Default:
        1-1000.

Logging:
  -log_dir DIR
        Directory of the log file ciao-launcher.log (created with mode
        0755). Default: DATA-ROOT/logs/launcher.
  -logtostderr
        Log to standard error only, not to the file. Default: false.
  -alsologtostderr
        Log to the file and to standard error. Default: false.
  -stderrthreshold LEVEL
        When logging to the file, records at or above LEVEL (INFO, WARNING,
        ERROR, FATAL or 0-3) also go to standard error. Default: ERROR.
  -v N
        Verbosity: 0 info, 1 debug (frames, QMP traffic), 2 or more trace.
        Default: 0.
  -vmodule LIST
        Accepted for compatibility (glog's pattern=N,...) and ignored, with
        a warning. Default: none.
  -log_backtrace_at FILE:LINE
        Accepted for compatibility and ignored, with a warning. Default:
        none.

  -h, -help, --help
        Print this help to standard output and exit with status 0.
";
