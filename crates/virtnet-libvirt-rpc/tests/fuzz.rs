//! Stable-Rust fuzzing of the decoder (as `virtnet-dhcp`'s random-bytes test does): a few
//! thousand fixed-seed random frames and mutations of the recorded transcript frames go
//! through every decoding entry point. None may panic, and none may make the decoder
//! allocate more than its limits allow (a length word beyond the frame is refused before any
//! allocation: checked by lengths that claim far more than the frame holds).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use virtnet_libvirt_rpc::frame::{payload_len, split_frame, LEN_SIZE, MESSAGE_MAX};
use virtnet_libvirt_rpc::remote::Procedure;
use virtnet_libvirt_rpc::{Call, DecodeError, Message, Reply};

/// Records the largest single allocation of the current thread, so a test can check that
/// decoding a frame never asks for more than a small multiple of the frame's size.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator; only records sizes in a thread-local Cell,
// whose const initialiser allocates nothing.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        // SAFETY: same layout, handed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: allocated by `System` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        // SAFETY: as `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Decodes `frame` every way and checks the largest allocation it caused.
fn decode_bounded(frame: &[u8]) {
    LARGEST.with(|l| l.set(0));
    decode_everything(frame);
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest <= 16 * frame.len() + 4096,
        "decoding a {}-byte frame allocated {largest} bytes at once",
        frame.len()
    );
}

fn transcript_frames() -> Vec<Vec<u8>> {
    let dir = std::env::var("VIRTNET_SHARED_DIR").unwrap_or_else(|_| "/work/shared".into());
    let text = std::fs::read_to_string(format!(
        "{dir}/conformance/libvirt-9.0/rpc/transcript-virsh-virtqemud.txt"
    ))
    .expect("transcript");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().nth(7))
        .map(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

/// Every way a server or client decodes a frame.
fn decode_everything(frame: &[u8]) {
    let _ = Message::decode_frame(frame);
    if let Ok((header, body)) = split_frame(frame) {
        let _ = Call::decode(header.proc_, body);
        let _ = Reply::decode(header.proc_, body);
    }
    // The body alone, as every procedure's arguments and result.
    let body = frame.get(28..).unwrap_or_default();
    for n in 0..450 {
        if Procedure::from_i32(n).is_some() {
            let _ = Call::decode(n, body);
            let _ = Reply::decode(n, body);
        }
    }
}

fn mutate(rng: &mut SmallRng, frame: &mut Vec<u8>) {
    match rng.gen_range(0..6) {
        // Flip bytes.
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                if !frame.is_empty() {
                    let i = rng.gen_range(0..frame.len());
                    frame[i] = rng.gen();
                }
            }
        }
        // A length word (of a string or list) made huge.
        1 if frame.len() >= 32 => {
            let i = rng.gen_range(28..frame.len() - 3) & !3;
            let v: u32 = rng.gen_range(0x7fff_0000..=u32::MAX);
            frame[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        // Truncate (fixing the frame's own length word, so the body is what is short).
        2 => {
            let keep = rng.gen_range(0..=frame.len());
            frame.truncate(keep);
            if frame.len() >= 4 {
                let n = (frame.len() as u32).to_be_bytes();
                frame[..4].copy_from_slice(&n);
            }
        }
        // Extend with garbage.
        3 => {
            for _ in 0..rng.gen_range(1..64) {
                frame.push(rng.gen());
            }
            let n = (frame.len() as u32).to_be_bytes();
            frame[..4].copy_from_slice(&n);
        }
        // Another procedure number, same body.
        4 if frame.len() >= 16 => {
            let p: i32 = rng.gen_range(0..450);
            frame[12..16].copy_from_slice(&p.to_be_bytes());
        }
        // Another message type or status.
        _ if frame.len() >= 28 => {
            let i = if rng.gen() { 16 } else { 24 };
            frame[i..i + 4].copy_from_slice(&rng.gen_range(0u32..8).to_be_bytes());
        }
        _ => {}
    }
}

#[test]
fn mutated_transcript_frames_never_panic() {
    let frames = transcript_frames();
    let mut rng = SmallRng::seed_from_u64(0x6c76_7270);
    for round in 0..4000 {
        let mut frame = frames[round % frames.len()].clone();
        for _ in 0..rng.gen_range(1..4) {
            mutate(&mut rng, &mut frame);
        }
        decode_bounded(&frame);
    }
}

#[test]
fn random_frames_never_panic() {
    let mut rng = SmallRng::seed_from_u64(0x6b65_6570);
    for _ in 0..4000 {
        let len = rng.gen_range(0..256);
        let mut frame: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if frame.len() >= 4 && rng.gen() {
            let n = (frame.len() as u32).to_be_bytes();
            frame[..4].copy_from_slice(&n);
        }
        decode_bounded(&frame);
    }
}

#[test]
fn oversized_and_undersized_length_words_are_refused_before_reading() {
    assert_eq!(
        payload_len(((LEN_SIZE + MESSAGE_MAX + 1) as u32).to_be_bytes()),
        Err(DecodeError::FrameTooLarge(LEN_SIZE + MESSAGE_MAX + 1))
    );
    assert_eq!(
        payload_len(u32::MAX.to_be_bytes()),
        Err(DecodeError::FrameTooLarge(u32::MAX as usize))
    );
    assert_eq!(
        payload_len(27u32.to_be_bytes()),
        Err(DecodeError::FrameTooShort(27))
    );
    assert_eq!(payload_len(28u32.to_be_bytes()), Ok(24));
    // A blocking reader is refused before the payload is allocated or read.
    let mut stream: &[u8] = &u32::MAX.to_be_bytes();
    assert!(virtnet_libvirt_rpc::frame::read_frame(&mut stream).is_err());
}

#[test]
fn a_list_or_string_claiming_more_than_the_frame_holds_is_refused() {
    // LIST_ALL_NETWORKS reply claiming 16384 networks (the .x limit) in 8 bytes of body.
    let mut body = 16_384u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 4]);
    assert!(matches!(
        Reply::decode(Procedure::ConnectListAllNetworks as i32, &body),
        Err(DecodeError::Truncated { .. })
    ));
    // ... and one past the limit is refused as too long whatever follows.
    let body = 16_385u32.to_be_bytes();
    assert_eq!(
        Reply::decode(Procedure::ConnectListAllNetworks as i32, &body),
        Err(DecodeError::TooLong {
            len: 16_385,
            max: 16_384
        })
    );
    // A string past REMOTE_STRING_MAX.
    let body = (4_194_305u32).to_be_bytes();
    assert_eq!(
        Call::decode(Procedure::NetworkLookupByName as i32, &body),
        Err(DecodeError::TooLong {
            len: 4_194_305,
            max: 4_194_304
        })
    );
    // A string within the limit but beyond the frame.
    let body = 4_000_000u32.to_be_bytes();
    assert!(matches!(
        Call::decode(Procedure::NetworkLookupByName as i32, &body),
        Err(DecodeError::Truncated { .. })
    ));
}
