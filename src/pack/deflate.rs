//! One raw-deflate block for the parallel gzip, on the zlib-rs engine (the one flate2 uses)
//! through its zlib-compatible interface, because only that exposes `deflateTune`.
//!
//! Why tune: zlib-rs (a port of zlib-ng) finds matches with a 4-byte hash at levels 1-8,
//! which misses the 3-byte matches zlib finds; on a Debian rootfs its level 6 is 1.6% larger
//! than zlib's (and pigz's). Its level 9 uses zlib's 3-byte rolling hash; with the
//! match-finder limits of [`TUNING`] that path gives zlib's ratio or better at a fraction of
//! level 9's time. Levels 1-5 keep zlib-rs's own (fast) settings.

use std::io;
use std::mem::MaybeUninit;

use libz_rs_sys as z;

/// Match-finder limits (good_length, max_lazy, nice_length, max_chain) for levels 6-8 on
/// zlib-rs's level-9 path (lazy matching, 3-byte rolling hash). Measured with
/// `benches/pack.sh` on a bookworm armhf rootfs (see the README's benchmark figures).
pub const TUNING: [(u32, (i32, i32, i32, i32)); 3] = [
    (6, (8, 32, 128, 48)),
    (7, (8, 32, 128, 128)),
    (8, (32, 32, 128, 256)),
];

/// A deflate stream, ended on drop.
struct Stream(Box<z::z_stream>);

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2_ and is ended once.
        unsafe { z::deflateEnd(&mut *self.0) };
    }
}

fn check(what: &str, code: i32) -> io::Result<()> {
    if code == z::Z_OK || code == z::Z_STREAM_END {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "deflate {what}: zlib code {code}"
        )))
    }
}

/// Raw deflate of `data` primed with `dict` (at most 32 KiB), ended by a sync flush, or by
/// the final block when `last`; `level` 1-9.
pub fn block(data: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let level = level.clamp(1, 9);
    let tune = TUNING.iter().find(|(l, _)| *l == level).map(|(_, t)| *t);
    // SAFETY: an all-zero z_stream (no allocator given: zlib-rs's own) is what deflateInit2_
    // expects.
    let mut s = Stream(Box::new(unsafe { MaybeUninit::zeroed().assume_init() }));
    let engine_level = if tune.is_some() { 9 } else { level as i32 };
    // SAFETY: `s.0` is a valid z_stream; the version and size are the library's own.
    check("init", unsafe {
        z::deflateInit2_(
            &mut *s.0,
            engine_level,
            z::Z_DEFLATED,
            -15,
            8,
            z::Z_DEFAULT_STRATEGY,
            z::zlibVersion(),
            std::mem::size_of::<z::z_stream>() as i32,
        )
    })?;
    if let Some((good, lazy, nice, chain)) = tune {
        // SAFETY: an initialised stream.
        check("tune", unsafe {
            z::deflateTune(&mut *s.0, good, lazy, nice, chain)
        })?;
    }
    if !dict.is_empty() {
        let len = u32::try_from(dict.len()).map_err(io::Error::other)?;
        // SAFETY: `dict` outlives the call.
        check("dictionary", unsafe {
            z::deflateSetDictionary(&mut *s.0, dict.as_ptr(), len)
        })?;
    }
    let flush = if last { z::Z_FINISH } else { z::Z_SYNC_FLUSH };
    let mut out: Vec<u8> = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let chunk = input.len().min(u32::MAX as usize);
        let room = (out.capacity() - out.len()).min(u32::MAX as usize);
        s.0.next_in = input.as_ptr();
        s.0.avail_in = chunk as u32;
        // SAFETY: `room` bytes of spare capacity follow `out.len()`.
        s.0.next_out = unsafe { out.as_mut_ptr().add(out.len()) };
        s.0.avail_out = room as u32;
        let whole = chunk == input.len();
        let code = unsafe { z::deflate(&mut *s.0, if whole { flush } else { z::Z_NO_FLUSH }) };
        if code != z::Z_BUF_ERROR {
            check("", code)?;
        }
        let used = chunk - s.0.avail_in as usize;
        let written = room - s.0.avail_out as usize;
        // SAFETY: deflate initialised `written` bytes after `out.len()`.
        unsafe { out.set_len(out.len() + written) };
        input = &input[used..];
        let done = if last {
            code == z::Z_STREAM_END
        } else {
            // A sync flush is complete when input is used up and output room is left.
            whole && input.is_empty() && s.0.avail_out > 0
        };
        if done {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_level_round_trips_with_a_dictionary() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} of {}\n", i % 977, i % 13).into_bytes())
            .take(400_000)
            .collect();
        let (a, b) = text.split_at(150_000);
        for level in 1..=9 {
            let mut stream = block(a, &[], false, level).unwrap();
            stream.extend(block(b, &a[a.len() - 32 * 1024..], true, level).unwrap());
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(&stream[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, text, "level {level}");
        }
        assert!(block(b"", &[], true, 6).unwrap().len() < 16);
    }
}
