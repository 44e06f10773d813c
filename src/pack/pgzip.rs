//! Parallel gzip, pigz-style: the input is cut into blocks compressed on every core, each
//! primed with the 32 KiB before it (so the ratio matches a single stream) and ended with a
//! sync flush, the last one with the final block; the pieces concatenate into one standard
//! deflate stream inside one gzip member (header without name or time, CRC-32 and length of
//! the whole input). `gzip -t`, Go's `compress/gzip` and GNU tar read it as any other.
//!
//! Memory is bounded: at most two blocks per worker are in flight.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The size of one compressed block (pigz uses 128 KiB).
pub const BLOCK: usize = 256 * 1024;
/// How much of the previous block primes the next (deflate's window).
const DICT: usize = 32 * 1024;

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// Each worker's stack (deflate's state is on the heap).
const WORKER_STACK: usize = 512 << 10;

/// A `Write` that gzips what it is given on `threads` workers into `out`.
pub struct ParallelGzip<W: Write> {
    out: Option<W>,
    level: u32,
    buf: Vec<u8>,
    prev_tail: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u64,
    jobs: Option<SyncSender<Job>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    in_flight: usize,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip stream into `out` at `level` (0-9) on `threads` workers (at least 1).
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=3 (Unix): no name, no time.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                // A thread the system refuses is an error, never a panic. Deflate keeps its
                // state on the heap: a small stack lets many workers fit a limited address
                // space.
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let _ = job
                            .reply
                            .send(super::deflate::block(&job.data, &job.dict, job.last, level));
                    })
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| io::Error::other(format!("starting {threads} gzip threads: {e}")))?;
        Ok(ParallelGzip {
            out: Some(out),
            level,
            buf: Vec::with_capacity(BLOCK),
            prev_tail: Vec::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
            jobs: Some(tx),
            pending: VecDeque::new(),
            in_flight: threads * 2,
            workers,
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.crc.update(&data);
        self.size += data.len() as u64;
        let dict = std::mem::take(&mut self.prev_tail);
        self.prev_tail = data[data.len().saturating_sub(DICT)..].to_vec();
        let (reply, rx) = sync_channel(1);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the gzip stream is finished"))?;
        jobs.send(Job {
            data,
            dict,
            last,
            reply,
        })
        .map_err(|_| io::Error::other("a gzip worker stopped"))?;
        self.pending.push_back(rx);
        while self.pending.len() > self.in_flight || (last && !self.pending.is_empty()) {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let block = rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker stopped"))??;
            self.out
                .as_mut()
                .ok_or_else(|| io::Error::other("finished"))?
                .write_all(&block)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let size = self.size;
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&(size as u32).to_le_bytes())?;
        out.flush()?;
        Ok(out)
    }

    /// The compression level.
    pub fn level(&self) -> u32 {
        self.level
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut gz = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        for chunk in data.chunks(77_777) {
            gz.write_all(chunk).unwrap();
        }
        let out = gz.finish().unwrap();
        assert_eq!(&out[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&out[4..8], &[0, 0, 0, 0], "no time in the header");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        out
    }

    #[test]
    fn one_standard_stream_whatever_the_thread_count() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        while data.len() < 3 * BLOCK + 1234 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.extend_from_slice(format!("line {} of text {}\n", x % 1000, x % 7).as_bytes());
        }
        let a = roundtrip(&data, 1);
        let b = roundtrip(&data, 3);
        assert_eq!(a, b, "the output does not depend on the thread count");
        roundtrip(b"", 2);
        roundtrip(&vec![0u8; BLOCK], 2);
    }
}
