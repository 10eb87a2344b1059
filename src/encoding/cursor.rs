//! A bounds-checked reader over one rows event's row data, and the context-free fault a value
//! decoder reports (the row loop adds table, column and row to it).
//!
//! Invariant: every read either consumes exactly the bytes it returns or fails with
//! [`Fault::Truncated`] without moving; nothing here panics on short input.

/// Why one value could not be decoded; [`super::DecodeError`] adds where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The row data ended inside a value.
    Truncated { needed: usize, remaining: usize },
    /// A type this decoder has no rule for.
    UnsupportedType(u8),
    /// Text in a character set other than utf8/latin1/ascii that is not valid UTF-8.
    UnsupportedCharset(u16),
    /// Text in a UTF-8 character set that is not valid UTF-8.
    InvalidText(u16),
    /// Anything else that contradicts the column definition (with what was expected/found).
    Invalid(String),
}

/// Reads little-endian integers and byte runs from a slice, front to back.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Nothing left to read.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(Fault::Truncated {
                needed: n,
                remaining,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// One byte.
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, Fault> {
        Ok(self.array::<1>()?[0])
    }

    /// An unsigned little-endian integer of `n` (0..=8) bytes.
    #[inline]
    pub(crate) fn uint_le(&mut self, n: usize) -> Result<u64, Fault> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |acc, b| acc << 8 | u64::from(*b)))
    }

    /// A length-encoded integer (MySQL's `net_field_length`: one byte below 251, else 0xfc,
    /// 0xfd or 0xfe followed by 2, 3 or 8 bytes); 0xfb (NULL) and 0xff are invalid here.
    pub(crate) fn lenenc(&mut self) -> Result<u64, Fault> {
        let start = self.pos;
        let n = match self.u8()? {
            x @ 0..=250 => Ok(u64::from(x)),
            0xfc => self.uint_le(2),
            0xfd => self.uint_le(3),
            0xfe => self.uint_le(8),
            x => Err(Fault::Invalid(format!(
                "length-encoded integer starts with {x:#x}"
            ))),
        };
        if n.is_err() {
            self.pos = start;
        }
        n
    }

    /// An unsigned big-endian integer of `n` (0..=8) bytes.
    #[inline]
    pub(crate) fn uint_be(&mut self, n: usize) -> Result<u64, Fault> {
        let bytes = self.take(n)?;
        Ok(be(bytes))
    }
}

/// The big-endian unsigned value of up to 8 bytes.
#[inline]
pub(crate) fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, b| acc << 8 | u64::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_a_truncation_and_does_not_move() {
        let mut c = Cursor::new(&[1, 2, 3]);
        assert_eq!(
            c.take(4),
            Err(Fault::Truncated {
                needed: 4,
                remaining: 3
            })
        );
        assert_eq!(c.remaining(), 3);
        assert_eq!(c.uint_le(3), Ok(0x030201));
        assert!(c.is_empty());
    }

    #[test]
    fn length_encoded_integers_read_all_four_widths() {
        let bytes = [
            0xfa, 0xfc, 0x01, 0x02, 0xfd, 0x01, 0x02, 0x03, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80,
        ];
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.lenenc(), Ok(250));
        assert_eq!(c.lenenc(), Ok(0x0201));
        assert_eq!(c.lenenc(), Ok(0x030201));
        assert_eq!(c.lenenc(), Ok(0x8000_0000_0000_0001));
        let mut short = Cursor::new(&[0xfc, 0x01]);
        assert!(short.lenenc().is_err());
        assert_eq!(short.remaining(), 2, "a failed read does not move");
        assert!(Cursor::new(&[0xfb]).lenenc().is_err());
    }

    #[test]
    fn big_endian_and_little_endian_read_the_same_bytes_differently() {
        let mut c = Cursor::new(&[0x12, 0x34, 0x12, 0x34]);
        assert_eq!(c.uint_be(2), Ok(0x1234));
        assert_eq!(c.uint_le(2), Ok(0x3412));
    }
}
