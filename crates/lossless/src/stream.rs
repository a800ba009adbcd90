//! Inputs of any length in bounded memory: [`compress_stream`] codes an
//! input longer than one block block by block into a file of blocks
//! ([`tenbits_coding::blocks`]), writing each as it is done, and
//! [`StreamDecoder`] decodes one block at a time, writing each once its
//! checksum holds. An input of one block is the same single container
//! [`compress`] writes.
//!
//! Memory is one block's worth: its bytes, tokens and coder state (about
//! 8 bytes per input byte with the default schedule) plus the model, so
//! the default 4 MiB block bounds a run near 40 MB above the model,
//! whatever the input's length.

use std::io::{self, Read, Write};

use tenbits_coding::{is_blocks, read_container, BlockReader, BlockWriter, Header};
use tenbits_inference::LanguageModel;

use crate::{compress, decompress_container, LosslessError, Options, Progress, Stats};

/// Input bytes per block of a long input.
pub const DEFAULT_BLOCK_BYTES: usize = 4 << 20;

/// How far a stream is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamProgress {
    /// Input bytes done (the current block counted by its tokens done).
    pub done_bytes: u64,
    /// Input bytes in all, where known (a file; not a pipe).
    pub total_bytes: Option<u64>,
    /// Blocks begun.
    pub blocks: u64,
}

/// What [`compress_stream`] did.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Input bytes.
    pub input_bytes: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Blocks (1: a single container).
    pub blocks: u64,
    /// Tokens coded, over all blocks.
    pub tokens: u64,
    /// The model's cross-entropy of the input, in bits, over all blocks.
    pub model_bits: f64,
}

/// Cuts an input into blocks of at most `limit` bytes, each ending after a
/// newline where one falls in its last sixteenth (a cut inside a line or a
/// character costs the next block's first tokens more).
struct BlockSource<R> {
    input: R,
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> BlockSource<R> {
    fn next(&mut self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        let mut block = std::mem::take(&mut self.carry);
        while block.len() < limit && !self.eof {
            let start = block.len();
            block.resize(limit, 0);
            let n = loop {
                match self.input.read(&mut block[start..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            block.truncate(start + n);
            self.eof = n == 0;
        }
        if block.is_empty() && self.eof {
            return Ok(None);
        }
        if block.len() >= limit && !self.eof {
            let tail = limit - limit / 16;
            if let Some(nl) = block[tail..].iter().rposition(|&b| b == b'\n') {
                self.carry = block.split_off(tail + nl + 1);
            }
        }
        Ok(Some(block))
    }

    /// Whether nothing follows what was returned.
    fn done(&mut self) -> io::Result<bool> {
        if !self.carry.is_empty() {
            return Ok(false);
        }
        if self.eof {
            return Ok(true);
        }
        let mut one = [0u8; 1];
        loop {
            match self.input.read(&mut one) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(true);
                }
                Ok(_) => {
                    self.carry.push(one[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The coder's progress in tokens through one block of `len` bytes that
/// starts `before` bytes in, as progress in bytes through the whole.
fn block_progress<'p>(
    progress: &'p mut dyn FnMut(StreamProgress),
    before: u64,
    len: u64,
    total_bytes: Option<u64>,
    blocks: u64,
) -> impl FnMut(Progress) + 'p {
    move |p: Progress| {
        progress(StreamProgress {
            done_bytes: before + len * p.done_tokens / p.total_tokens.max(1),
            total_bytes,
            blocks,
        })
    }
}

fn write_err(e: io::Error) -> LosslessError {
    LosslessError::Write(e)
}

/// Compresses `input` to `output`: one container when it fits in
/// `block_bytes`, else a file of blocks of that many input bytes at most.
pub fn compress_stream<M: LanguageModel>(
    model: &mut M,
    input: impl Read,
    mut output: impl Write,
    options: &Options,
    block_bytes: usize,
    total_bytes: Option<u64>,
    progress: &mut dyn FnMut(StreamProgress),
) -> Result<StreamStats, LosslessError> {
    let block_bytes = block_bytes.max(1);
    let mut source = BlockSource {
        input,
        carry: Vec::new(),
        eof: false,
    };
    let read_err = |e: io::Error| LosslessError::Read(e);
    let mut stats = StreamStats::default();
    let first = source
        .next(block_bytes)
        .map_err(read_err)?
        .unwrap_or_default();
    let mut code = |block: &[u8], done: u64, blocks: u64, stats: &mut StreamStats| {
        let len = block.len() as u64;
        let mut inner = block_progress(&mut *progress, done, len, total_bytes, blocks);
        let (container, s): (Vec<u8>, Stats) = compress(model, block, options, &mut inner)?;
        stats.input_bytes += len;
        stats.tokens += s.tokens;
        stats.model_bits += s.model_bits;
        stats.blocks = blocks;
        Ok::<_, LosslessError>(container)
    };
    if source.done().map_err(read_err)? {
        let container = code(&first, 0, 1, &mut stats)?;
        output.write_all(&container).map_err(write_err)?;
        output.flush().map_err(write_err)?;
        stats.output_bytes = container.len() as u64;
        return Ok(stats);
    }
    let mut counting = CountingWriter {
        inner: output,
        bytes: 0,
    };
    let mut writer = BlockWriter::new(&mut counting, block_bytes as u64).map_err(write_err)?;
    let mut block = Some(first);
    let mut blocks = 0;
    while let Some(data) = block {
        blocks += 1;
        let done = stats.input_bytes;
        let container = code(&data, done, blocks, &mut stats)?;
        writer
            .block(&container, data.len() as u64)
            .map_err(write_err)?;
        drop(data);
        block = source.next(block_bytes).map_err(read_err)?;
    }
    writer.finish().map_err(write_err)?;
    stats.output_bytes = counting.bytes;
    Ok(stats)
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `.tb` stream opened for decoding: its (first block's) header is known
/// before a model is loaded.
pub struct StreamDecoder<'a> {
    header: Header,
    kind: Kind<'a>,
}

enum Kind<'a> {
    /// One container, read whole.
    Single(Vec<u8>),
    /// A file of blocks; the first block already read.
    Blocks {
        reader: BlockReader<Box<dyn Read + 'a>>,
        first: Vec<u8>,
    },
}

impl<'a> StreamDecoder<'a> {
    /// Reads enough of `input` for the header: all of a single container,
    /// or the first block of a file of blocks.
    pub fn open(mut input: impl Read + 'a) -> Result<Self, LosslessError> {
        let mut prefix = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            match input.read(&mut prefix[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LosslessError::Read(e)),
            }
        }
        let prefix = prefix[..got].to_vec();
        if !is_blocks(&prefix) {
            let mut all = prefix;
            input.read_to_end(&mut all).map_err(LosslessError::Read)?;
            let header = read_container(&all)?.0;
            return Ok(Self {
                header,
                kind: Kind::Single(all),
            });
        }
        let chained: Box<dyn Read + 'a> = Box::new(io::Cursor::new(prefix).chain(input));
        let mut reader = BlockReader::new(chained)?;
        let first = reader
            .next_block()?
            .ok_or_else(|| LosslessError::Corrupted("a file of blocks without a block".into()))?;
        let header = read_container(&first)?.0;
        Ok(Self {
            header,
            kind: Kind::Blocks { reader, first },
        })
    }

    /// The header (of the first block, for a file of blocks): what model
    /// and adapter decoding needs.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether this is a file of blocks.
    pub fn is_blocks(&self) -> bool {
        matches!(self.kind, Kind::Blocks { .. })
    }

    /// Decodes everything to `output`, each block once its checksum holds;
    /// returns the bytes written. Every block must name the same model,
    /// files and adapter as the first.
    pub fn run<M: LanguageModel>(
        self,
        model: &mut M,
        output: &mut dyn Write,
        total_bytes: Option<u64>,
        progress: &mut dyn FnMut(StreamProgress),
    ) -> Result<u64, LosslessError> {
        match self.kind {
            Kind::Single(all) => {
                let mut inner = block_progress(progress, 0, all.len() as u64, total_bytes, 1);
                let data = decompress_container(model, &all, &mut inner)?;
                output.write_all(&data).map_err(write_err)?;
                output.flush().map_err(write_err)?;
                Ok(data.len() as u64)
            }
            Kind::Blocks { mut reader, first } => {
                let first_header = self.header;
                let mut block = Some(first);
                let mut written = 0u64;
                while let Some(container) = block {
                    let header = read_container(&container)?.0;
                    if (&header.model, &header.files, &header.adapter_id)
                        != (
                            &first_header.model,
                            &first_header.files,
                            &first_header.adapter_id,
                        )
                    {
                        return Err(LosslessError::Corrupted(format!(
                            "block {} names another model, files or adapter than the first",
                            reader.blocks()
                        )));
                    }
                    let before = reader.consumed() - container.len() as u64;
                    let (len, blocks) = (container.len() as u64, reader.blocks());
                    let mut inner =
                        block_progress(&mut *progress, before, len, total_bytes, blocks);
                    let data = decompress_container(model, &container, &mut inner)?;
                    drop(container);
                    output.write_all(&data).map_err(write_err)?;
                    reader.decoded(data.len() as u64);
                    written += data.len() as u64;
                    block = reader.next_block()?;
                }
                output.flush().map_err(write_err)?;
                Ok(written)
            }
        }
    }
}
