//! Files of many blocks: inputs longer than one block are coded block by
//! block, so compress and decompress hold one block at a time and write
//! as they go (as zstd and xz do with their frames and blocks).
//!
//! Each block is an ordinary container (format 3) of one block of the input,
//! with its own checksum and CRC; the file frames them:
//!
//! | field          | encoding                                            |
//! |----------------|-----------------------------------------------------|
//! | magic          | [`MAGIC_BLOCKS`] (`74 b3`)                          |
//! | version        | `u8`: 1                                             |
//! | block size     | varint: the input bytes per block (the last may be shorter) |
//! | blocks         | each: varint length (> 0), then that many bytes: a container |
//! | end            | varint 0, varint block count, varint total original length |
//! | CRC-32         | `u32` LE of every byte above                        |
//!
//! Nothing may follow the CRC. A reader checks each block as it comes
//! (its container's CRC and, once decoded, its checksum), and the end: a
//! file cut between blocks, blocks dropped, reordered or taken from
//! another file, or bytes appended, fail the count, the length or the
//! CRC. A streaming decoder has written the blocks before the end when it
//! finds such damage; it reports the error (and `tenbits decompress` to a
//! file then removes its temporary output).

use std::io::{self, Read, Write};

use crate::container::{
    crc32_update, put_varint, read_varint, ContainerError, VarintFault, CRC_INIT,
};

/// The first two bytes of a file of blocks (neither a format-1 nor a
/// format-2 or format-3 magic).
pub const MAGIC_BLOCKS: [u8; 2] = [0x74, 0xB3];

/// The framing's version.
const BLOCKS_VERSION: u8 = 1;

/// Longest container of one block this reader accepts (a block's payload
/// is near its input's size at worst; blocks are a few MiB).
pub const MAX_BLOCK_CONTAINER: u64 = 1 << 30;

/// Whether `prefix` (the file's first bytes) starts a file of blocks.
pub fn is_blocks(prefix: &[u8]) -> bool {
    prefix.starts_with(&MAGIC_BLOCKS)
}

/// Writes a file of blocks to `W`.
pub struct BlockWriter<W: Write> {
    out: W,
    crc: u32,
    blocks: u64,
    original: u64,
}

impl<W: Write> BlockWriter<W> {
    /// Starts the file: magic, version, block size.
    pub fn new(out: W, block_bytes: u64) -> io::Result<Self> {
        let mut w = Self {
            out,
            crc: CRC_INIT,
            blocks: 0,
            original: 0,
        };
        let mut head = MAGIC_BLOCKS.to_vec();
        head.push(BLOCKS_VERSION);
        put_varint(&mut head, block_bytes);
        w.put(&head)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc = crc32_update(self.crc, bytes);
        self.out.write_all(bytes)
    }

    /// Appends one block's container, coding `original_len` input bytes.
    pub fn block(&mut self, container: &[u8], original_len: u64) -> io::Result<()> {
        let mut len = Vec::new();
        put_varint(&mut len, container.len() as u64);
        self.put(&len)?;
        self.put(container)?;
        self.blocks += 1;
        self.original += original_len;
        Ok(())
    }

    /// Ends the file (count, length, CRC) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut end = Vec::new();
        put_varint(&mut end, 0);
        put_varint(&mut end, self.blocks);
        put_varint(&mut end, self.original);
        self.put(&end)?;
        let crc = self.crc ^ CRC_INIT;
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Why a file of blocks cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BlocksError {
    /// The framing is damaged: what and where.
    #[error("the .tb file is corrupted or truncated ({0}); get an intact copy of the file")]
    Damaged(String),
    /// A block's container is damaged.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// Reading failed.
    #[error("cannot read the .tb file: {0}")]
    Io(#[from] io::Error),
}

/// Reads a file of blocks from `R`, one block at a time.
pub struct BlockReader<R: Read> {
    input: R,
    crc: u32,
    /// Bytes read so far (for progress).
    consumed: u64,
    blocks: u64,
    original: u64,
    block_bytes: u64,
    ended: bool,
}

impl<R: Read> BlockReader<R> {
    /// Reads the start of the file (magic, version, block size).
    pub fn new(input: R) -> Result<Self, BlocksError> {
        let mut r = Self {
            input,
            crc: CRC_INIT,
            consumed: 0,
            blocks: 0,
            original: 0,
            block_bytes: 0,
            ended: false,
        };
        let mut magic = [0u8; 3];
        r.exact(&mut magic, "the start")?;
        if magic[..2] != MAGIC_BLOCKS {
            return Err(ContainerError::NotATenbitsFile.into());
        }
        if magic[2] != BLOCKS_VERSION {
            return Err(BlocksError::Damaged(format!(
                "unknown block framing version {}",
                magic[2]
            )));
        }
        r.block_bytes = r.varint("the block size")?;
        Ok(r)
    }

    /// Input bytes per block, as the file says.
    pub fn block_bytes(&self) -> u64 {
        self.block_bytes
    }

    /// Bytes of the file read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Blocks read so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), BlocksError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BlocksError::Damaged(format!("it ends inside {what}")),
            _ => BlocksError::Io(e),
        })?;
        self.crc = crc32_update(self.crc, buf);
        self.consumed += buf.len() as u64;
        Ok(())
    }

    fn varint(&mut self, what: &str) -> Result<u64, BlocksError> {
        read_varint(
            || {
                let mut b = [0u8; 1];
                self.exact(&mut b, what)?;
                Ok(b[0])
            },
            |fault| {
                BlocksError::Damaged(match fault {
                    VarintFault::Overflows => format!("{what} overflows 64 bits"),
                    VarintFault::NotShortest => format!("{what} is not in its shortest form"),
                    VarintFault::TooLong => format!("{what} is too long"),
                })
            },
        )
    }

    /// The next block's container, or `None` after the last, once the end
    /// (count, length, CRC, nothing after) checks out. `original_len` of
    /// each returned block must be reported with [`Self::decoded`] for the
    /// end's length check.
    pub fn next_block(&mut self) -> Result<Option<Vec<u8>>, BlocksError> {
        if self.ended {
            return Ok(None);
        }
        let len = self.varint("a block length")?;
        if len == 0 {
            self.end()?;
            return Ok(None);
        }
        if len > MAX_BLOCK_CONTAINER {
            return Err(BlocksError::Damaged(format!("a block claims {len} bytes")));
        }
        let mut container = vec![0u8; len as usize];
        self.exact(&mut container, "a block")?;
        self.blocks += 1;
        Ok(Some(container))
    }

    /// Counts `original_len` decoded bytes of the last block.
    pub fn decoded(&mut self, original_len: u64) {
        self.original += original_len;
    }

    fn end(&mut self) -> Result<(), BlocksError> {
        self.ended = true;
        let blocks = self.varint("the block count")?;
        let original = self.varint("the total length")?;
        let expected_crc = self.crc ^ CRC_INIT;
        let mut crc = [0u8; 4];
        self.exact(&mut crc, "the final CRC")?;
        if u32::from_le_bytes(crc) != expected_crc {
            return Err(BlocksError::Damaged("CRC-32 mismatch over the file".into()));
        }
        if blocks != self.blocks || original != self.original {
            return Err(BlocksError::Damaged(format!(
                "the end says {blocks} blocks of {original} bytes, but {} blocks of {} bytes came before it",
                self.blocks, self.original
            )));
        }
        let mut more = [0u8; 1];
        match self.input.read(&mut more) {
            Ok(0) => Ok(()),
            Ok(_) => Err(BlocksError::Damaged("bytes follow its end".into())),
            Err(e) => Err(BlocksError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(blocks: &[(&[u8], u64)]) -> Vec<u8> {
        let mut w = BlockWriter::new(Vec::new(), 100).unwrap();
        for (c, n) in blocks {
            w.block(c, *n).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BlocksError> {
        let mut r = BlockReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(b) = r.next_block()? {
            r.decoded(b.len() as u64 * 10);
            out.push(b);
        }
        Ok(out)
    }

    #[test]
    fn blocks_round_trip_and_every_damage_is_refused() {
        let bytes = file(&[(b"abc", 30), (b"defgh", 50)]);
        assert!(is_blocks(&bytes));
        let blocks = read_all(&bytes).unwrap();
        assert_eq!(blocks, [b"abc".to_vec(), b"defgh".to_vec()]);
        // Every truncation, every bit flip and appended bytes: an error
        // (a flip inside a block's bytes is the container's to catch, so
        // only the framing's bytes are flipped here).
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                match read_all(&bad) {
                    Err(_) => {}
                    Ok(b) => panic!("flip {i}:{bit} read as {b:?}"),
                }
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err());
        let twice = [bytes.clone(), bytes.clone()].concat();
        assert!(read_all(&twice).is_err());
    }
}
