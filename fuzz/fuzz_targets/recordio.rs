//! The RecordIO framing and image-header reader on arbitrary bytes: every record start the
//! input could point at, and the header unpacking of whatever comes back.
#![no_main]

use face_data::formats::recordio::{encode_record, read_record, unpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Offsets: the start, and every 4-byte-aligned position named by the first word.
    let first = data.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    for offset in [0, first, first % data.len().max(1)] {
        if let Ok(record) = read_record(data, offset) {
            drop(unpack(&record));
        }
    }
    drop(unpack(data));
    // Framing round trip: whatever we write, we read back unchanged.
    let mut framed = Vec::new();
    encode_record(data, &mut framed);
    assert_eq!(read_record(&framed, 0).as_deref(), Ok(data));
});
