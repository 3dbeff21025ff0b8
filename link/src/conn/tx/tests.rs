//! Unit tests of the send pool, queue, scheduler and recovery.

use super::*;
use crate::event::Event;
use crate::wire::{flags, AckRepr};

extern crate std;

type Pool = SendBuffer<'static>;

/// A pool of `w` slots of `n` bytes, in leaked test memory.
fn pool(w: usize, n: usize) -> Pool {
    let slots: &'static mut [TxSlot] = std::vec![TxSlot::EMPTY; w].leak();
    let data: &'static mut [u8] = std::vec![0u8; w * n].leak();
    SendBuffer::new(Buf::Borrowed(slots), Buf::Borrowed(data))
}
const LIM: u16 = 1000;
const T0: Instant = Instant::from_millis(1);
/// Cut at the slot size, which is what these tests queue with.
const ALL: Cut = Cut { alone: 32, shared: 32 };

fn send_all(b: &mut Pool, now: Instant) -> heapless::Vec<u16, 8> {
    let mut v = heapless::Vec::new();
    while let Some(p) = b.pick(now, LIM, 0, ALL) {
        v.push(p.seq).unwrap();
    }
    v
}

fn sack(bits: &[usize]) -> AckRepr {
    let mut s = AckRepr::new(100);
    for &b in bits {
        s.sack[b / 8] |= 1 << (b % 8);
    }
    s.sack_len = 4;
    s
}

#[test]
fn fragments_and_reports_each_packet_once() {
    let mut b = pool(8, 32);
    let id = b.queue_packet(2, 1, &[7u8; 70], 32).unwrap();
    assert_eq!(b.free(), 5);
    assert_eq!(&send_all(&mut b, T0)[..], &[0, 1, 2]);
    assert_eq!(b.frame_of(0).1 & flags::MORE, flags::MORE);
    assert_eq!(b.poll_report(), None);
    b.on_ack(T0, 2, None, 1, 0);
    assert_eq!(b.poll_report(), None, "one fragment still out");
    b.on_ack(T0, 3, None, 1, 0);
    assert_eq!(b.poll_report(), Some(Event::Acked(id)));
    assert_eq!(b.poll_report(), None);
    assert!(b.is_idle());
}

#[test]
fn priority_overtakes_queued_bulk_but_fifo_within_channel() {
    let mut b = pool(8, 32);
    b.queue_packet(2, 10, b"bulk1", 32).unwrap();
    b.queue_packet(2, 10, b"bulk2", 32).unwrap();
    b.queue_packet(1, 20, b"key", 32).unwrap();
    let mut order: heapless::Vec<heapless::Vec<u8, 8>, 3> = heapless::Vec::new();
    while let Some(p) = b.pick(T0, LIM, 0, ALL) {
        order.push(heapless::Vec::from_slice(b.frame_of(p.slot).2).unwrap()).unwrap();
    }
    assert_eq!(order, [&b"key"[..], b"bulk1", b"bulk2"]);
}

#[test]
fn a_channel_of_equal_priority_does_not_wait_behind_another_channels_backlog() {
    let mut b = pool(8, 32);
    assert_eq!(b.write_stream(20, 0, &[0u8; 96], 32, usize::MAX), 96);
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    assert_eq!(b.frame_of(p.slot).0, 20);
    b.queue_packet(21, 0, b"request", 32).unwrap();
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    assert_eq!(b.frame_of(p.slot).2, b"request", "ahead of the older bulk fragments");
    let mut rest = heapless::Vec::<u8, 4>::new();
    while let Some(p) = b.pick(T0, LIM, 0, ALL) {
        rest.push(b.frame_of(p.slot).0).unwrap();
    }
    assert_eq!(&rest[..], &[20, 20], "the backlog follows, in order");
}

#[test]
fn sack_gap_triggers_fast_retransmit_of_the_hole_only() {
    let mut b = pool(8, 32);
    for _ in 0..4 {
        b.queue_packet(1, 1, b"x", 32).unwrap();
    }
    send_all(&mut b, T0);
    // Peer has 0, missed 1, got 2 and 3.
    let out = b.on_ack(T0, 1, Some(&sack(&[0, 1])), 1, 0);
    assert_eq!(out.lost, 1);
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    assert!(p.retransmission);
    assert_eq!(p.seq, 1);
    assert!(b.pick(T0, LIM, 0, ALL).is_none());
}

#[test]
fn ack_of_a_retransmitted_frame_does_not_condemn_frames_sent_after_its_first_copy() {
    let mut b = pool(8, 32);
    for ch in 0..4 {
        b.queue_packet(ch, 1, b"x", 32).unwrap();
    }
    b.pick(T0, LIM, 0, ALL).unwrap(); // seq 0
                                      // Seq 0 times out and is resent after seqs 1..3 went out.
    for _ in 0..3 {
        b.pick(T0, LIM, 0, ALL).unwrap();
    }
    assert_eq!(b.on_timeout(T0 + Duration::from_millis(60), Duration::from_millis(50)), 4);
    let p = b.pick(T0 + Duration::from_millis(60), LIM, 0, ALL).unwrap();
    assert_eq!((p.seq, p.retransmission), (0, true));
    // The original copy of 0 arrives: only 0 is acknowledged. Frames 1..3 were
    // also marked by the timeout, so resend them and check nothing more is lost.
    while b.pick(T0 + Duration::from_millis(60), LIM, 0, ALL).is_some() {}
    let out = b.on_ack(T0 + Duration::from_millis(61), 1, None, 1, 0);
    assert_eq!(out.lost, 0);
}

#[test]
fn an_ack_sooner_than_the_repeat_could_have_crossed_is_for_the_first_copy() {
    // The loop this breaks: on a slow line a frame waits behind ~200 ms of queued
    // bytes, the timer fires first, the frame is sent again, and its ACK (for the
    // first copy) gives Karn's rule no sample, so the timer never learns.
    let ms = Duration::from_millis;
    let mut b = pool(8, 32);
    b.queue_packet(1, 1, b"x", 32).unwrap();
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    b.departed(p.slot, T0 + ms(10));
    assert_eq!(b.on_timeout(T0 + ms(60), ms(50)), 1);
    let p = b.pick(T0 + ms(60), LIM, 0, ALL).unwrap();
    assert!(p.retransmission);
    // The repeat leaves behind 140 ms of bytes; the ACK comes long before that.
    b.departed(p.slot, T0 + ms(200));
    let out = b.on_ack(T0 + ms(80), 1, None, 1, 0);
    assert_eq!(out.spurious, 1);
    assert_eq!(out.rtt, Some(ms(70)), "timed from the first copy's departure");
}

#[test]
fn an_ack_after_the_repeat_crossed_is_ambiguous_and_gives_no_sample() {
    let ms = Duration::from_millis;
    let mut b = pool(8, 32);
    for ch in 0..2 {
        b.queue_packet(ch, 1, b"x", 32).unwrap();
    }
    // Frame 0 measures the path: 5 ms from departure to ACK.
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    b.departed(p.slot, T0);
    assert_eq!(b.on_ack(T0 + ms(5), 1, None, 1, 0).rtt, Some(ms(5)));
    let p = b.pick(T0 + ms(10), LIM, 0, ALL).unwrap();
    b.departed(p.slot, T0 + ms(10));
    assert_eq!(b.on_timeout(T0 + ms(70), ms(60)), 1);
    let p = b.pick(T0 + ms(70), LIM, 0, ALL).unwrap();
    b.departed(p.slot, T0 + ms(70));
    // 6 ms after the repeat left: it could be for either copy.
    let out = b.on_ack(T0 + ms(76), 2, None, 1, 0);
    assert_eq!((out.spurious, out.rtt), (0, None));
}

#[test]
fn queued_fragments_are_cut_at_their_first_transmission() {
    // A packet queued in large fragments goes out in the size wanted when each
    // is sent: here 40, then 30 once the sizer moved.
    let mut b = pool(8, 128);
    let id = b.queue_packet(1, 1, &[7u8; 100], 128).unwrap();
    assert_eq!(b.free(), 7, "one fragment while queued");
    let cut = |n| Cut { alone: n, shared: n };
    let mut sizes = heapless::Vec::<(usize, u8), 8>::new();
    let mut n = 40;
    while let Some(p) = b.pick(T0, LIM, 0, cut(n)) {
        let (_, fl, data) = b.frame_of(p.slot);
        sizes.push((data.len(), fl & flags::MORE)).unwrap();
        n = 30;
    }
    assert_eq!(&sizes[..], &[(40, flags::MORE), (30, flags::MORE), (30, 0)]);
    b.on_ack(T0, 2, None, 1, 0);
    assert_eq!(b.poll_report(), None, "the last fragment is still out");
    b.on_ack(T0, 3, None, 1, 0);
    assert_eq!(b.poll_report(), Some(Event::Acked(id)));
    assert!(b.is_idle());
}

#[test]
fn a_stream_fragment_cut_at_transmission_keeps_its_fin_on_the_last_piece() {
    let mut b = pool(8, 32);
    assert_eq!(b.write_stream(1, 1, &[1u8; 30], 32, usize::MAX), 30);
    assert_eq!(b.finish_stream(1, 1), Some(true));
    let cut = Cut { alone: 20, shared: 20 };
    let p = b.pick(T0, LIM, 0, cut).unwrap();
    assert_eq!((b.frame_of(p.slot).1, b.frame_of(p.slot).2.len()), (0, 20));
    let p = b.pick(T0, LIM, 0, cut).unwrap();
    assert_eq!((b.frame_of(p.slot).1, b.frame_of(p.slot).2.len()), (flags::FIN, 10));
    b.on_ack(T0, 2, None, 1, 0);
    assert!(b.is_idle());
}

#[test]
fn frames_are_short_while_another_channel_shares_the_line() {
    let ms = Duration::from_millis;
    let mut b = pool(16, 128);
    let cut = Cut { alone: 100, shared: 25 };
    let len_of = |b: &Pool, p: Pick| b.frame_of(p.slot).2.len();
    b.queue_packet(2, 1, &[0u8; 400], 128).unwrap();
    let p = b.pick(T0, LIM, 0, cut).unwrap();
    assert_eq!(len_of(&b, p), 100, "bulk alone: long frames");
    b.queue_packet(1, 2, b"keystroke", 128).unwrap();
    let p = b.pick(T0, LIM, 0, cut).unwrap();
    assert_eq!(b.frame_of(p.slot).2, b"keystroke", "higher priority goes first");
    let p = b.pick(T0 + ms(10), LIM, 0, cut).unwrap();
    assert_eq!(len_of(&b, p), 25, "the line was just shared: short frames");
    let later = T0 + SHARED_HOLD + ms(20);
    let p = b.pick(later, LIM, 0, cut).unwrap();
    assert_eq!(len_of(&b, p), 25, "the keystroke is still in flight");
    b.on_ack(later, 3, None, 1, 0);
    let p = b.pick(later + SHARED_HOLD, LIM, 0, cut).unwrap();
    assert_eq!(len_of(&b, p), 100, "alone again for the hold time: long frames");
}

#[test]
fn karn_no_rtt_sample_from_retransmitted_frame() {
    let mut b = pool(8, 32);
    b.queue_packet(1, 1, b"x", 32).unwrap();
    send_all(&mut b, T0);
    assert_eq!(b.on_timeout(T0 + Duration::from_millis(100), Duration::from_millis(50)), 1);
    b.pick(T0 + Duration::from_millis(100), LIM, 0, ALL).unwrap();
    let out = b.on_ack(T0 + Duration::from_millis(120), 1, None, 1, 0);
    assert_eq!(out.rtt, None);
}

#[test]
fn window_and_peer_limit_bound_new_sequence_numbers() {
    let mut b = pool(8, 32);
    for ch in 0..8 {
        b.queue_packet(ch, 1, b"x", 32).unwrap();
    }
    assert_eq!(b.queue_packet(9, 1, b"x", 32), Err(SendError::WouldBlock), "pool full");
    assert_eq!(b.queue_packet(1, 1, &[0; 32 * 9], 32), Err(SendError::TooLarge));
    let mut n = 0;
    while b.pick(T0, 3, 0, ALL).is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn a_channel_queues_only_a_few_fragments_ahead() {
    let mut b = pool(8, 32);
    assert_eq!(b.write_stream(1, 1, &[0; 1000], 32, usize::MAX), 32 * QUEUE_AHEAD);
    assert_eq!(b.queue_packet(1, 1, b"p", 32), Err(SendError::WouldBlock));
    assert!(b.queue_packet(2, 1, b"p", 32).is_ok(), "other channels are not held up");
    b.pick(T0, LIM, 0, ALL).unwrap();
    assert_eq!(b.write_stream(1, 1, &[0; 1000], 32, usize::MAX), 32);
}

#[test]
fn in_flight_bytes_cap_holds_new_frames_not_retransmissions() {
    let mut b = pool(8, 32);
    for ch in 0..4 {
        b.queue_packet(ch, 1, &[0u8; 30], 32).unwrap();
    }
    assert!(b.pick(T0, LIM, 60, ALL).is_some());
    assert!(b.pick(T0, LIM, 60, ALL).is_some());
    assert!(b.pick(T0, LIM, 60, ALL).is_none(), "60 bytes in flight");
    assert_eq!(b.on_timeout(T0 + Duration::from_millis(100), Duration::from_millis(50)), 2);
    assert!(b.pick(T0, LIM, 60, ALL).unwrap().retransmission, "retransmissions are never held");
    b.on_ack(T0, 1, None, 1, 0);
    assert!(b.pick(T0, LIM, 60, ALL).unwrap().retransmission, "seq 1 is still owed first");
    assert!(!b.pick(T0, LIM, 60, ALL).unwrap().retransmission, "the ack made room for a new frame");
    assert!(b.pick(T0, LIM, 60, ALL).is_none());
}

#[test]
fn stale_or_bogus_acks_change_nothing() {
    let mut b = pool(8, 32);
    b.queue_packet(1, 1, b"x", 32).unwrap();
    send_all(&mut b, T0);
    let out = b.on_ack(T0, 5, None, 1, 0);
    assert!(!out.advanced);
    assert_eq!(b.in_flight(), 1);
}

#[test]
fn reset_reports_everything_unacknowledged_and_starts_clean() {
    let mut b = pool(8, 32);
    let acked = b.queue_packet(2, 1, b"done", 32).unwrap();
    b.pick(T0, LIM, 0, ALL).unwrap();
    b.on_ack(T0, 1, None, 1, 0);
    let sent = b.queue_packet(1, 1, &[1u8; 40], 32).unwrap(); // 2 fragments
    b.pick(T0, LIM, 0, ALL).unwrap(); // only the first goes out
    let queued = b.queue_packet(1, 1, b"queued", 32).unwrap();
    assert_eq!(b.write_stream(3, 1, b"stream", 32, usize::MAX), 6);
    b.reset();
    assert_eq!(b.poll_report(), Some(Event::StreamAborted { channel: 3 }));
    assert_eq!(b.poll_report(), Some(Event::Acked(acked)), "acknowledged before the reset");
    assert_eq!(b.poll_report(), Some(Event::Unconfirmed(sent)));
    assert_eq!(b.poll_report(), Some(Event::Unconfirmed(queued)));
    assert_eq!(b.poll_report(), None);
    assert!(b.is_idle());
    assert!(b.pick(T0, LIM, 0, ALL).is_none(), "nothing of the old session is sent in the new one");
    let fresh = b.queue_packet(1, 1, b"fresh", 32).unwrap();
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    assert_eq!((p.seq, b.frame_of(p.slot).2), (0, &b"fresh"[..]));
    b.on_ack(T0, 1, None, 1, 0);
    assert_eq!(b.poll_report(), Some(Event::Acked(fresh)));
}

#[test]
fn oversized_queued_fragments_are_withdrawn_and_reported() {
    let mut b = pool(8, 32);
    let big = b.queue_packet(1, 1, &[0u8; 60], 32).unwrap(); // 32 + 28
    let small = b.queue_packet(2, 1, &[0u8; 10], 32).unwrap();
    b.write_stream(3, 1, &[0u8; 20], 32, usize::MAX);
    b.withdraw_oversized(16);
    assert_eq!(b.poll_report(), Some(Event::StreamAborted { channel: 3 }));
    assert_eq!(b.poll_report(), Some(Event::Unconfirmed(big)));
    assert_eq!(b.poll_report(), None);
    let p = b.pick(T0, LIM, 0, ALL).unwrap();
    assert_eq!(b.frame_of(p.slot).2.len(), 10);
    b.on_ack(T0, 1, None, 1, 0);
    assert_eq!(b.poll_report(), Some(Event::Acked(small)));
    assert!(b.is_idle());
}

#[test]
fn finished_and_acknowledged_streams_are_not_aborted() {
    let mut b = pool(8, 32);
    b.write_stream(1, 1, b"all", 32, usize::MAX);
    assert_eq!(b.finish_stream(1, 1), Some(true));
    b.pick(T0, LIM, 0, ALL).unwrap();
    b.on_ack(T0, 1, None, 1, 0);
    b.reset();
    assert_eq!(b.poll_report(), None);
}

#[test]
fn an_abort_drops_unsent_stream_bytes_and_sends_the_reset_after_what_went_out() {
    let mut b = pool(8, 32);
    assert_eq!(b.write_stream(1, 1, &[1u8; 64], 32, usize::MAX), 64);
    let first = b.pick(T0, LIM, 0, ALL).unwrap();
    assert!(b.abort_stream(1, 1, b"why"));
    assert_eq!(b.write_stream(1, 1, b"more", 32, usize::MAX), 0, "the stream is over");
    assert_eq!(b.finish_stream(1, 1), Some(false), "no end after a reset");
    let p = b.pick(T0, LIM, 0, Cut { alone: 2, shared: 2 }).unwrap();
    let (_, fl, data) = b.frame_of(p.slot);
    assert_eq!((fl, data), (flags::RST, &b"why"[..]), "whole, though longer than the cut");
    assert!(b.pick(T0, LIM, 0, ALL).is_none(), "the unsent 32 bytes were dropped");
    assert_eq!((first.seq, p.seq), (0, 1));
    b.on_ack(T0, 2, None, 1, 0);
    assert!(b.is_idle());
    b.reset();
    assert_eq!(b.poll_report(), None, "a reset stream that was acknowledged is not aborted again");
}

#[test]
fn stream_writes_coalesce_into_queued_fragment() {
    let mut b = pool(8, 32);
    assert_eq!(b.write_stream(1, 1, b"abc", 8, usize::MAX), 3);
    assert_eq!(b.write_stream(1, 1, b"defghij", 8, usize::MAX), 7);
    assert_eq!(b.finish_stream(1, 1), Some(true));
    let eight = Cut { alone: 8, shared: 8 };
    let p = b.pick(T0, LIM, 0, eight).unwrap();
    assert_eq!(b.frame_of(p.slot).2, b"abcdefgh");
    let p = b.pick(T0, LIM, 0, eight).unwrap();
    let (_, fl, data) = b.frame_of(p.slot);
    assert_eq!((data, fl & flags::FIN), (&b"ij"[..], flags::FIN));
    assert_eq!(b.write_stream(1, 1, b"late", 8, usize::MAX), 4, "a new stream after FIN went out");
}
