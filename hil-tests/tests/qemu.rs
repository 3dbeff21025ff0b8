//! Virtual hardware in the loop: the strand bridge node runs in QEMU
//! (mps2-an385, Cortex-M3) with UART0 and UART1 on local TCP ports, and two
//! `strand pipe` processes talk to each other through it.
//!
//! Needs `qemu-system-arm` and the thumbv7m-none-eabi target; without them
//! each test prints "skipped: ..." and passes, unless `STRAND_REQUIRE_QEMU=1`
//! (set by `.ci/run`), where a missing tool fails the test.

mod common;

use common::qemu::{board_elf, free_port, qemu_present, run_to_exit, Machine, NoisyRelay};
use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BOARD: &str = "qemu-mps2-an385";
const MACHINE: &str = "mps2-an385";
const TARGET: &str = "thumbv7m-none-eabi";
/// Per direction, as the issue asks.
const SIZE: usize = 200_000;

/// The 200 KB transfers run one at a time: side by side on a 2-core machine
/// their QEMUs starve each other and the node's path slows to a crawl (the
/// links over it then spend their time on needless retransmissions; figures
/// in docs/performance.md).
static ONE_TRANSFER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn transfer_slot() -> std::sync::MutexGuard<'static, ()> {
    ONE_TRANSFER_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn bridge() -> Option<PathBuf> {
    if !qemu_present() {
        return None;
    }
    board_elf(BOARD, TARGET, BOARD)
}

/// A `strand pipe` to `port`, fed `input`. The node's path is slow (QEMU's
/// UART moves a byte per interrupt): the handshake gets time.
fn pipe(port: u16, input: Vec<u8>) -> Running {
    spawn(&["pipe", &format!("tcp:127.0.0.1:{port}"), "--stats", "--connect-timeout", "30"], Some(input))
}

fn say(msg: String) {
    // Past the harness's capture: the figures belong in the test log.
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// 200 KB each way at once through the node; returns the seconds it took.
/// A pipe exits 0 only once its peer confirmed every byte written, which
/// through the node is the bridge relaying the far host's confirmations.
fn both_ways(upstream_a: impl FnOnce(u16) -> (u16, Option<NoisyRelay>), seed: u64) -> Option<f64> {
    let elf = bridge()?;
    let _slot = transfer_slot();
    let node = Machine::start(MACHINE, &elf, [free_port(), free_port()]);
    let (port_a, _relay) = upstream_a(node.ports[0]);
    let (ab, ba) = (data(seed, SIZE), data(seed + 1, SIZE));
    let start = Instant::now();
    let (a, b) = (pipe(port_a, ab.clone()), pipe(node.ports[1], ba.clone()));
    // Both are stopped (SIGTERM: they print their counters) if either hangs.
    let ((oa, hung_a), (ob, hung_b)) =
        (a.finish_or_stop(Duration::from_secs(180)), b.finish_or_stop(Duration::from_secs(10)));
    let secs = start.elapsed().as_secs_f64();
    assert!(
        !hung_a && !hung_b,
        "a pipe hung (A {hung_a}, B {hung_b}): A received {} of {SIZE}, B {} of {SIZE}\n  A: {}\n  B: {}",
        oa.stdout.len(),
        ob.stdout.len(),
        oa.stderr.trim(),
        ob.stderr.trim()
    );
    let cpu = node.cpu_time().as_secs_f64();
    assert!(oa.status.success(), "host A failed: {}", oa.stderr);
    assert!(ob.status.success(), "host B failed: {}", ob.stderr);
    assert_eq!(ob.stdout.len(), ab.len(), "A->B length");
    assert_eq!(hash(&ob.stdout), hash(&ab), "A->B differs");
    assert_eq!(oa.stdout.len(), ba.len(), "B->A length");
    assert_eq!(hash(&oa.stdout), hash(&ba), "B->A differs");
    say(format!(
        "{SIZE} bytes each way through the {MACHINE} node in {secs:.1} s ({:.1} KB/s each way); QEMU used {cpu:.1} s of CPU ({:.0}% of one core)\n  A: {}\n  B: {}",
        SIZE as f64 / secs / 1000.0,
        cpu / secs * 100.0,
        oa.stderr.trim(),
        ob.stderr.trim()
    ));
    Some(secs)
}

#[test]
fn bridge_carries_200_kb_each_way_at_once() {
    both_ways(|p| (p, None), 1);
}

#[test]
fn bridge_repairs_a_noisy_line_on_one_side() {
    // Host A reaches the node through a line with a bit-error rate of 1e-4.
    both_ways(
        |p| {
            let relay = NoisyRelay::start(p, 1e-4, 7);
            (relay.port, Some(relay))
        },
        2,
    );
}

/// The node loses power mid-transfer and boots again: neither host may exit 0
/// unless everything arrived both ways.
#[test]
fn node_reset_mid_transfer_is_never_a_success_with_missing_bytes() {
    let Some(elf) = bridge() else { return };
    let _slot = transfer_slot();
    let mut node = Machine::start(MACHINE, &elf, [free_port(), free_port()]);
    let (ab, ba) = (data(3, SIZE), data(4, SIZE));
    let spawn_pipe = |port: u16, input: Vec<u8>| {
        spawn(&["pipe", &format!("tcp:127.0.0.1:{port}"), "--connect-timeout", "15"], Some(input))
    };
    let (a, b) = (spawn_pipe(node.ports[0], ab.clone()), spawn_pipe(node.ports[1], ba.clone()));
    // About a third of the way (the transfer takes ~20-25 s).
    std::thread::sleep(Duration::from_secs(7));
    node.restart();
    let (oa, ob) = (a.finish(Duration::from_secs(120)), b.finish(Duration::from_secs(120)));
    let complete = oa.stdout == ba && ob.stdout == ab;
    say(format!(
        "node reset mid-transfer: A exit {:?} ({} of {SIZE} bytes received), B exit {:?} ({} of {SIZE}); A: {}; B: {}",
        oa.status.code(),
        oa.stdout.len(),
        ob.status.code(),
        ob.stdout.len(),
        oa.stderr.trim(),
        ob.stderr.trim()
    ));
    for (name, o) in [("A", &oa), ("B", &ob)] {
        assert!(!o.status.success() || complete, "host {name} exited 0 although bytes are missing");
    }
}

/// The echo service (`--bin loopback`, UART0 only): a pipe gets its own
/// stream back, end of stream included, so it exits 0.
#[test]
fn loopback_echoes_a_stream_and_its_end() {
    if !qemu_present() {
        return;
    }
    let Some(elf) = board_elf(BOARD, TARGET, "loopback") else { return };
    let node = Machine::start(MACHINE, &elf, [free_port(), free_port()]);
    let sent = data(5, 50_000);
    let o = pipe(node.ports[0], sent.clone()).finish(Duration::from_secs(120));
    assert!(o.status.success(), "the pipe failed: {}", o.stderr);
    assert_eq!(o.stdout.len(), sent.len());
    assert_eq!(hash(&o.stdout), hash(&sent), "the echo differs");
}

/// The core's on-target tests on both Cortex-M machines.
#[test]
fn on_target_core_tests() {
    if !qemu_present() {
        return;
    }
    for (board, machine, target) in
        [(BOARD, MACHINE, TARGET), ("qemu-mps2-an386", "mps2-an386", "thumbv7em-none-eabihf")]
    {
        let Some(elf) = board_elf(board, target, "selftest") else { continue };
        let (ok, out) = run_to_exit(machine, &elf, Duration::from_secs(60));
        say(format!("{machine}:\n{out}"));
        assert!(ok, "on-target tests failed on {machine}:\n{out}");
        assert!(out.contains("4 passed, 0 failed"), "{out}");
    }
}

/// An idle node sleeps (WFI): QEMU uses almost no CPU while hosts are
/// connected and only keepalives cross.
#[test]
fn idle_node_costs_almost_no_cpu() {
    let Some(elf) = bridge() else { return };
    let node = Machine::start(MACHINE, &elf, [free_port(), free_port()]);
    // Hosts connected and idle: a pipe whose stdin never ends.
    let idle = |port: u16| {
        std::process::Command::new(strand())
            .args(["pipe", &format!("tcp:127.0.0.1:{port}"), "--connect-timeout", "30"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (idle(node.ports[0]), idle(node.ports[1]));
    std::thread::sleep(Duration::from_secs(3));
    let before = node.cpu_time();
    std::thread::sleep(Duration::from_secs(10));
    let used = node.cpu_time() - before;
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    let share = used.as_secs_f64() / 10.0 * 100.0;
    say(format!("idle node: QEMU used {used:?} of CPU in 10 s ({share:.1}%)"));
    assert!(share < 5.0, "an idle node should sleep, QEMU used {share:.1}% CPU");
}
