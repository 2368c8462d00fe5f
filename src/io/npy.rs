//! `.npy` arrays and `.npz` archives (numpy's own file formats).
//!
//! Reading accepts format versions 1.0, 2.0 and 3.0, every [`DType`] in little-endian (`<`),
//! native (`=`), "not applicable" (`|`) and big-endian (`>`) spelling, `fortran_order: True`
//! arrays and scalars (shape `()`). Big-endian data is byte-swapped and Fortran-ordered data is
//! transposed, so the resulting [`Tensor`] is always little-endian, row-major. `=` is taken as
//! little-endian: numpy itself never writes `=` into a file, and every machine this tool runs on
//! is little-endian.
//!
//! Writing produces exactly what `numpy.save` produces (version 1.0, or 2.0 for huge headers,
//! with numpy's header padding), so numpy and tools built on it read the files unchanged.
//!
//! **bfloat16.** numpy has no bfloat16. trtlens writes bfloat16 tensors with the descriptor
//! `<V2` (a 2-byte opaque record), which is what `np.save` writes for an `ml_dtypes.bfloat16`
//! array; `np.load` returns it as raw `V2` data that `arr.view(ml_dtypes.bfloat16)` turns back
//! into numbers. No value is converted, so nothing is lost. When reading, `<V2` and `|V2` are
//! taken to be bfloat16 (there is no other 2-byte element a model tensor could hold).
//!
//! `.npz` archives are zip files with one `NAME.npy` member per array, read in archive order and
//! written uncompressed (like `numpy.savez`).

use std::io::{Cursor, Read, Write};

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor, numel};

/// The six bytes every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// numpy pads headers so that the data starts on a multiple of this.
const ARRAY_ALIGN: usize = 64;

/// numpy leaves room in the header for the growth axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// Deepest nesting accepted in a header literal (real headers nest at most 3 deep).
const MAX_LITERAL_DEPTH: usize = 32;

/// Read a complete `.npy` file.
pub fn read_npy(bytes: &[u8]) -> Result<Tensor> {
    let header = parse_header(bytes)?;
    let (dtype, big_endian) = parse_descr(&header.descr)?;
    let count = checked_numel(&header.shape)
        .ok_or_else(|| Error::input(format!(".npy shape {:?} is too large", header.shape)))?;
    let nbytes = count
        .checked_mul(dtype.size())
        .ok_or_else(|| Error::input(format!(".npy shape {:?} is too large", header.shape)))?;
    let data = &bytes[header.data_start..];
    if data.len() < nbytes {
        return Err(Error::input(format!(
            "truncated .npy data: the header declares {} '{}' shape {:?} ({nbytes} bytes) but only {} bytes follow",
            dtype,
            header.descr,
            header.shape,
            data.len()
        )));
    }
    if data.len() > nbytes {
        return Err(Error::input(format!(
            "corrupt .npy: {} unexpected bytes after the {nbytes} bytes of {} shape {:?} data",
            data.len() - nbytes,
            dtype,
            header.shape
        )));
    }
    let mut data = data.to_vec();
    if big_endian && dtype.size() > 1 {
        for element in data.chunks_exact_mut(dtype.size()) {
            element.reverse();
        }
    }
    if dtype == DType::Bool {
        for b in &mut data {
            *b = u8::from(*b != 0);
        }
    }
    if header.fortran_order {
        data = fortran_to_c(&data, &header.shape, dtype.size());
    }
    Tensor::from_bytes(dtype, header.shape, data).map_err(|e| Error::input(format!("corrupt .npy: {e}")))
}

/// Where the data of a `.npy` file sits, from its header alone (for readers that decode the data
/// themselves, a piece at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Element type.
    pub dtype: DType,
    /// Shape (C order once read).
    pub shape: Vec<usize>,
    /// Offset of the first data byte in the file.
    pub data_start: usize,
    /// Bytes of data the header declares.
    pub nbytes: usize,
    /// True when the data bytes are stored as trtlens holds them (little-endian, C order, bool as
    /// 0/1 after [`normalize_bool`]); false for big-endian or Fortran-order data, which
    /// [`read_npy`] converts.
    pub plain: bool,
}

/// The layout of a `.npy` file from its first bytes; `Ok(None)` when `head` ends inside the header.
pub fn layout(head: &[u8]) -> Result<Option<Layout>> {
    if head.len() >= 12 && head.starts_with(MAGIC) {
        let need = match head[6] {
            1 => 10 + usize::from(u16::from_le_bytes([head[8], head[9]])),
            _ => 12 + u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
        };
        if head.len() < need {
            return Ok(None);
        }
    }
    let header = parse_header(head)?;
    let (dtype, big_endian) = parse_descr(&header.descr)?;
    let nbytes = checked_numel(&header.shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| Error::input(format!(".npy shape {:?} is too large", header.shape)))?;
    let plain = (!big_endian || dtype.size() <= 1) && !header.fortran_order;
    Ok(Some(Layout { dtype, shape: header.shape, data_start: header.data_start, nbytes, plain }))
}

/// Bool data as trtlens holds it: any non-zero byte is 1 (what [`read_npy`] does).
pub fn normalize_bool(data: &mut [u8]) {
    for b in data {
        *b = u8::from(*b != 0);
    }
}

/// Serialize a tensor as a `.npy` file, byte for byte what `numpy.save` writes (bfloat16 as
/// `<V2`, see the module documentation).
#[must_use]
pub fn write_npy(t: &Tensor) -> Vec<u8> {
    let mut out = npy_header(t.dtype(), t.shape());
    out.reserve_exact(t.bytes().len());
    out.extend_from_slice(t.bytes());
    out
}

/// The header of a `.npy` file holding a `dtype` array of `shape` (the data follows it as is, in
/// little-endian C order), written exactly as numpy writes it.
#[must_use]
pub fn npy_header(dtype: crate::tensor::DType, shape: &[usize]) -> Vec<u8> {
    let repr = shape_repr(shape);
    let mut dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {repr}, }}", dtype.npy_descr());
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.extend(std::iter::repeat_n(' ', GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // Same padding rule as numpy: pad with spaces, end with '\n', align the data to 64 bytes.
    let hlen = dict.len() + 1;
    let pad_for = |prefix: usize| ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
    let (version, pad) =
        if u16::try_from(hlen + pad_for(10)).is_ok() { (1u8, pad_for(10)) } else { (2u8, pad_for(12)) };
    let total_header = hlen + pad;
    let mut out = Vec::with_capacity(12 + total_header);
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(total_header as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(total_header as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// Read every array of a `.npz` archive, in archive order. Names lose their `.npy` suffix, as
/// with `numpy.load`.
pub fn read_npz(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Error::input(format!("not a readable .npz (zip) archive: {e}")))?;
    let mut out: Vec<(String, Tensor)> = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut member =
            archive.by_index(i).map_err(|e| Error::input(format!("corrupt .npz archive, member #{i}: {e}")))?;
        if member.is_dir() {
            continue;
        }
        let member_name = member.name().to_string();
        let mut data = Vec::with_capacity(usize::try_from(member.size()).unwrap_or(0).min(1 << 30));
        member
            .read_to_end(&mut data)
            .map_err(|e| Error::input(format!("corrupt .npz archive, member '{member_name}': {e}")))?;
        let name = member_name.strip_suffix(".npy").unwrap_or(&member_name).to_string();
        let tensor = read_npy(&data).map_err(|e| Error::input(format!(".npz member '{member_name}': {e}")))?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Error::input(format!(".npz archive holds the array '{name}' twice")));
        }
        out.push((name, tensor));
    }
    Ok(out)
}

/// Write tensors as an uncompressed `.npz` archive (like `numpy.savez`); member `NAME.npy` per
/// tensor, in the given order. Fails on duplicate names.
pub fn write_npz(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (i, (name, tensor)) in tensors.iter().enumerate() {
        if tensors[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::input(format!("cannot write .npz: the name '{name}' appears twice")));
        }
        let npy = write_npy(tensor);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(npy.len() >= u32::MAX as usize);
        let fail = |e: &dyn std::fmt::Display| Error::input(format!("cannot write .npz member '{name}.npy': {e}"));
        zip.start_file(format!("{name}.npy"), options).map_err(|e| fail(&e))?;
        zip.write_all(&npy).map_err(|e| fail(&e))?;
    }
    let cursor = zip.finish().map_err(|e| Error::input(format!("cannot write .npz: {e}")))?;
    Ok(cursor.into_inner())
}

/// The parsed `.npy` header.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
    /// Offset of the first data byte.
    data_start: usize,
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::input("not a .npy array (it does not start with the \\x93NUMPY magic)"));
    }
    if bytes.len() < 10 {
        return Err(Error::input(format!("truncated .npy: only {} bytes", bytes.len())));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(Error::input(format!("truncated .npy: only {} bytes", bytes.len())));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => {
            return Err(Error::input(format!(
                "unsupported .npy format version {major}.{minor} (trtlens reads 1.0, 2.0 and 3.0)"
            )));
        }
    };
    let end = start + hlen;
    let Some(raw) = bytes.get(start..end) else {
        return Err(Error::input(format!(
            "truncated .npy: the header should be {hlen} bytes but the file has only {} bytes after the prefix",
            bytes.len() - start
        )));
    };
    // Versions 1 and 2 store the header as latin-1, version 3 as UTF-8.
    let text: String = if major == 3 {
        std::str::from_utf8(raw).map_err(|e| Error::input(format!("corrupt .npy header (not UTF-8): {e}")))?.to_string()
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let value = LiteralParser::new(&text)
        .parse_all()
        .map_err(|e| Error::input(format!("corrupt .npy header {:?}: {e}", text.trim_end())))?;
    let Literal::Dict(entries) = value else {
        return Err(Error::input(format!("corrupt .npy header {:?}: not a dictionary", text.trim_end())));
    };
    let get = |key: &str| entries.iter().find(|(k, _)| matches!(k, Literal::Str(s) if s == key)).map(|(_, v)| v);
    let missing = |key: &str| Error::input(format!("corrupt .npy header {:?}: no '{key}' key", text.trim_end()));
    let descr = match get("descr").ok_or_else(|| missing("descr"))? {
        Literal::Str(s) => s.clone(),
        Literal::List(_) | Literal::Tuple(_) => {
            return Err(Error::input(
                "unsupported .npy dtype: structured (record) arrays are not supported; save one plain numeric array per tensor",
            ));
        }
        other => return Err(Error::input(format!("corrupt .npy header: 'descr' is {other:?}"))),
    };
    let fortran_order = match get("fortran_order").ok_or_else(|| missing("fortran_order"))? {
        Literal::Bool(b) => *b,
        other => return Err(Error::input(format!("corrupt .npy header: 'fortran_order' is {other:?}"))),
    };
    let shape = match get("shape").ok_or_else(|| missing("shape"))? {
        Literal::Tuple(items) | Literal::List(items) => items
            .iter()
            .map(|v| match v {
                Literal::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| Error::input(format!("corrupt .npy header: bad shape {items:?}")))?,
        other => return Err(Error::input(format!("corrupt .npy header: 'shape' is {other:?}"))),
    };
    Ok(Header { descr, fortran_order, shape, data_start: end })
}

/// Map a numpy array-protocol descriptor to a dtype; the flag is true for big-endian data.
fn parse_descr(descr: &str) -> Result<(DType, bool)> {
    let (big_endian, code) = match descr.chars().next() {
        Some('<' | '=' | '|') => (false, &descr[1..]),
        Some('>' | '!') => (true, &descr[1..]),
        _ => (false, descr),
    };
    let dtype = match code {
        "f2" | "e" => DType::Float16,
        "f4" | "f" => DType::Float32,
        "f8" | "d" => DType::Float64,
        "i1" | "b" => DType::Int8,
        "i2" | "h" => DType::Int16,
        "i4" => DType::Int32,
        "i8" | "q" => DType::Int64,
        "u1" | "B" => DType::Uint8,
        "u2" | "H" => DType::Uint16,
        "u4" => DType::Uint32,
        "u8" | "Q" => DType::Uint64,
        "b1" | "?" => DType::Bool,
        "V2" if !big_endian => DType::Bfloat16,
        _ => return Err(unknown_descr(descr, code)),
    };
    Ok((dtype, big_endian))
}

fn unknown_descr(descr: &str, code: &str) -> Error {
    let what = match code.chars().next() {
        Some('O') => {
            return Error::input(format!(
                "unsupported .npy dtype '{descr}': object arrays hold pickled Python objects, which trtlens does not read; save a numeric array"
            ));
        }
        Some('c') => "complex numbers",
        Some('U') => "unicode strings",
        Some('S' | 'a') => "byte strings",
        Some('M') => "datetimes",
        Some('m') => "timedeltas",
        Some('f') => "an unsupported float width",
        Some('i' | 'u') => "an unsupported integer width",
        Some('V') => "raw bytes (only '<V2', bfloat16, is read)",
        _ => "an unknown type",
    };
    Error::input(format!(
        "unsupported .npy dtype '{descr}' ({what}); trtlens reads float16/32/64, int8/16/32/64, uint8/16/32/64, bool and bfloat16 ('<V2')"
    ))
}

fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// numpy's `repr` of a shape tuple: `()`, `(3,)`, `(2, 3)`.
fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Reorder column-major (Fortran) element data into row-major (C) order.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let count = numel(shape);
    if shape.len() < 2 || count == 0 {
        return data.to_vec();
    }
    // Element stride of each axis in the Fortran layout: the first axis varies fastest.
    let mut fstride = Vec::with_capacity(shape.len());
    let mut acc = 1usize;
    for &d in shape {
        fstride.push(acc);
        acc *= d;
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    for _ in 0..count {
        out.extend_from_slice(&data[offset * size..(offset + 1) * size]);
        // Advance the C-order odometer: the last axis varies fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            offset += fstride[k];
            if index[k] < shape[k] {
                break;
            }
            offset -= fstride[k] * shape[k];
            index[k] = 0;
        }
    }
    out
}

/// The subset of Python literals that appear in `.npy` headers.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

/// A small recursive-descent parser for Python literals (`ast.literal_eval` subset).
struct LiteralParser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    depth: usize,
}

impl<'a> LiteralParser<'a> {
    fn new(text: &'a str) -> Self {
        LiteralParser { chars: text.chars().peekable(), depth: 0 }
    }

    fn parse_all(mut self) -> std::result::Result<Literal, String> {
        let v = self.value()?;
        self.skip_ws();
        match self.chars.next() {
            None => Ok(v),
            Some(c) => Err(format!("unexpected '{c}' after the dictionary")),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn expect(&mut self, want: char) -> std::result::Result<(), String> {
        self.skip_ws();
        match self.chars.next() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("expected '{want}', found '{c}'")),
            None => Err(format!("expected '{want}', found the end")),
        }
    }

    fn value(&mut self) -> std::result::Result<Literal, String> {
        self.skip_ws();
        let Some(&c) = self.chars.peek() else {
            return Err("unexpected end".to_string());
        };
        match c {
            '\'' | '"' => self.string(),
            '{' | '(' | '[' => {
                self.depth += 1;
                if self.depth > MAX_LITERAL_DEPTH {
                    return Err("nested too deeply".to_string());
                }
                self.chars.next();
                let v = match c {
                    '{' => self.dict(),
                    '(' => self.sequence(')').map(Literal::Tuple),
                    _ => self.sequence(']').map(Literal::List),
                };
                self.depth -= 1;
                v
            }
            '-' | '+' | '0'..='9' => self.int(),
            c if c.is_alphabetic() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = self.chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
                    word.push(c);
                    self.chars.next();
                }
                match word.as_str() {
                    "True" => Ok(Literal::Bool(true)),
                    "False" => Ok(Literal::Bool(false)),
                    "None" => Ok(Literal::None),
                    _ => Err(format!("unexpected word '{word}'")),
                }
            }
            _ => Err(format!("unexpected '{c}'")),
        }
    }

    fn string(&mut self) -> std::result::Result<Literal, String> {
        let quote = self.chars.next().ok_or("unexpected end")?;
        let mut s = String::new();
        loop {
            match self.chars.next() {
                None => return Err("unterminated string".to_string()),
                Some(c) if c == quote => return Ok(Literal::Str(s)),
                Some('\\') => match self.chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(c) => s.push(c),
                    None => return Err("unterminated string".to_string()),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn int(&mut self) -> std::result::Result<Literal, String> {
        let mut text = String::new();
        if let Some(&c) = self.chars.peek().filter(|c| **c == '-' || **c == '+') {
            text.push(c);
            self.chars.next();
        }
        while let Some(&c) = self.chars.peek().filter(|c| c.is_ascii_digit()) {
            text.push(c);
            self.chars.next();
        }
        // Python 2 wrote long integers with an `L` suffix.
        if self.chars.peek().is_some_and(|c| *c == 'L' || *c == 'l') {
            self.chars.next();
        }
        text.parse::<i128>().map(Literal::Int).map_err(|_| format!("bad integer '{text}'"))
    }

    fn sequence(&mut self, close: char) -> std::result::Result<Vec<Literal>, String> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.chars.peek() == Some(&close) {
                self.chars.next();
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.chars.next() {
                Some(',') => {}
                Some(c) if c == close => return Ok(items),
                Some(c) => return Err(format!("expected ',' or '{close}', found '{c}'")),
                None => return Err(format!("expected '{close}', found the end")),
            }
        }
    }

    fn dict(&mut self) -> std::result::Result<Literal, String> {
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.chars.peek() == Some(&'}') {
                self.chars.next();
                return Ok(Literal::Dict(entries));
            }
            let key = self.value()?;
            self.expect(':')?;
            let value = self.value()?;
            entries.push((key, value));
            self.skip_ws();
            match self.chars.next() {
                Some(',') => {}
                Some('}') => return Ok(Literal::Dict(entries)),
                Some(c) => return Err(format!("expected ',' or '}}', found '{c}'")),
                None => return Err("expected '}', found the end".to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    /// A tensor of `dtype` with distinct, type-appropriate values.
    fn sample(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        let n = numel(shape);
        let mut data = Vec::with_capacity(n * dtype.size());
        for i in 0..n {
            let v = i as f64 - 2.5;
            match dtype {
                DType::Float32 => data.extend_from_slice(&(v as f32).to_le_bytes()),
                DType::Float16 => data.extend_from_slice(&f16::from_f64(v).to_le_bytes()),
                DType::Bfloat16 => data.extend_from_slice(&bf16::from_f64(v).to_le_bytes()),
                DType::Float64 => data.extend_from_slice(&v.to_le_bytes()),
                DType::Int8 => data.extend_from_slice(&(i as i8 - 3).to_le_bytes()),
                DType::Int16 => data.extend_from_slice(&(i as i16 * 300 - 7).to_le_bytes()),
                DType::Int32 => data.extend_from_slice(&(i as i32 * 70_000 - 7).to_le_bytes()),
                DType::Int64 => data.extend_from_slice(&((i as i64) << 40 | 5).wrapping_neg().to_le_bytes()),
                DType::Uint8 => data.push(250u8.wrapping_add(i as u8)),
                DType::Uint16 => data.extend_from_slice(&(60_000u16 + i as u16).to_le_bytes()),
                DType::Uint32 => data.extend_from_slice(&(4_000_000_000u32 + i as u32).to_le_bytes()),
                DType::Uint64 => data.extend_from_slice(&(u64::MAX - i as u64).to_le_bytes()),
                DType::Bool => data.push(u8::from(i % 3 == 0)),
            }
        }
        Tensor::from_bytes(dtype, shape.to_vec(), data).map_err(|e| Error::input(e.to_string()))
    }

    fn fixture(name: &str) -> Result<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/io").join(name);
        std::fs::read(&path).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    /// Build a `.npy` by hand with an arbitrary header (version 1.0).
    fn handmade(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trips_every_dtype_and_shape() -> Result<()> {
        for dtype in DType::ALL {
            for shape in [&[][..], &[0][..], &[5][..], &[2, 3][..], &[2, 1, 3, 2][..]] {
                let t = sample(dtype, shape)?;
                let bytes = write_npy(&t);
                assert_eq!(bytes.len() % 64, t.bytes().len() % 64, "data is 64-byte aligned");
                let back = read_npy(&bytes)?;
                assert_eq!(back, t, "{dtype} {shape:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn writes_what_numpy_writes() -> Result<()> {
        // Bytes of np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3)).
        let t = Tensor::from_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).map_err(|e| Error::input(e.to_string()))?;
        let bytes = write_npy(&t);
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 118);
        assert_eq!(&bytes[10..10 + header.len()], header.as_bytes());
        assert_eq!(bytes[127], b'\n');
        assert_eq!(bytes.len(), 128 + 24);
        Ok(())
    }

    #[test]
    fn reads_numpy_fixtures_exactly() -> Result<()> {
        // Every file in this fixture round-trips through trtlens byte for byte.
        let npz = read_npz(&fixture("numpy_dtypes.npz")?)?;
        let names: Vec<&str> = npz.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "float32",
                "float16",
                "float64",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "bool",
                "bfloat16",
                "scalar",
                "empty",
                "/model/conv/Conv_output_0:0"
            ]
        );
        for (name, t) in &npz {
            if let Some(dtype) = DType::from_name(name) {
                assert_eq!(t.dtype(), dtype, "{name}");
                assert_eq!(t.shape(), [2, 3], "{name}");
            }
        }
        let get = |name: &str| npz.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| Error::input(name));
        // Values are arange(6) - 2 (clipped to 0..=1 for bool) unless noted in make_fixtures.py.
        assert_eq!(get("float32")?.to_f64_vec(), [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(get("float16")?.to_f64_vec(), [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(get("bfloat16")?.to_f64_vec(), [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(get("float64")?.to_f64_vec(), [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        for signed in ["int8", "int16", "int32", "int64"] {
            assert_eq!(get(signed)?.to_f64_vec(), [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0], "{signed}");
        }
        assert_eq!(get("uint8")?.bytes(), [0, 1, 2, 3, 4, 255]);
        assert_eq!(get("uint16")?.to_f64_vec(), [0.0, 1.0, 2.0, 3.0, 4.0, 65535.0]);
        assert_eq!(get("uint32")?.to_f64_vec(), [0.0, 1.0, 2.0, 3.0, 4.0, 4_294_967_295.0]);
        assert_eq!(get("uint64")?.get_i64(5), -1, "u64::MAX");
        assert_eq!(get("int64")?.get_i64(0), -2);
        assert_eq!(get("bool")?.bytes(), [1, 0, 0, 1, 0, 0]);
        let scalar = get("scalar")?;
        assert_eq!((scalar.dtype(), scalar.shape(), scalar.to_f64_vec()), (DType::Float32, &[][..], vec![7.5]));
        assert_eq!(get("empty")?.shape(), [0, 3]);
        assert_eq!(get("/model/conv/Conv_output_0:0")?.to_f64_vec(), [0.5, -0.25]);
        // Writing it back gives numpy's bytes for every member.
        let mut archive =
            zip::ZipArchive::new(Cursor::new(fixture("numpy_dtypes.npz")?)).map_err(|e| Error::input(e.to_string()))?;
        for (name, t) in &npz {
            let mut original = Vec::new();
            archive
                .by_name(&format!("{name}.npy"))
                .map_err(|e| Error::input(e.to_string()))?
                .read_to_end(&mut original)
                .map_err(|e| Error::input(e.to_string()))?;
            assert_eq!(write_npy(t), original, "{name}");
        }
        Ok(())
    }

    #[test]
    fn reads_fortran_and_big_endian_fixtures() -> Result<()> {
        let npz = read_npz(&fixture("numpy_layouts.npz")?)?;
        let expected: Vec<f64> = (0..24).map(f64::from).collect();
        for (name, t) in &npz {
            // Each member is np.arange(24).reshape(2, 3, 4) in some dtype, layout and byte order.
            assert_eq!(t.shape(), [2, 3, 4], "{name}");
            assert_eq!(t.to_f64_vec(), expected, "{name}");
        }
        let names: Vec<&str> = npz.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["fortran_f32", "big_i32", "big_fortran_f64", "big_u16"]);
        Ok(())
    }

    #[test]
    fn reads_version_2_and_3_headers() -> Result<()> {
        let v2 = fixture("version2.npy")?;
        assert_eq!(v2[6], 2);
        let t = read_npy(&v2)?;
        assert_eq!((t.dtype(), t.shape(), t.to_f64_vec()), (DType::Int16, &[3][..], vec![-1.0, 0.0, 1.0]));
        let v3 = fixture("version3.npy")?;
        assert_eq!(v3[6], 3);
        let t = read_npy(&v3)?;
        assert_eq!((t.dtype(), t.shape(), t.to_f64_vec()), (DType::Float64, &[1, 2][..], vec![0.25, -8.0]));
        Ok(())
    }

    #[test]
    fn converts_handmade_layouts() -> Result<()> {
        // Fortran order 2x3 of values 0..6 (C order) is stored column by column: 0 3 1 4 2 5.
        let data: Vec<u8> = [0i16, 3, 1, 4, 2, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = read_npy(&handmade("{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }\n", &data))?;
        assert_eq!(t.to_f64_vec(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // Big-endian, `=` and prefix-less spellings, Python 2 long shapes and double quotes.
        let t =
            read_npy(&handmade("{'descr': '>u4', 'fortran_order': False, 'shape': (2L,)}", &[0, 0, 1, 2, 0, 0, 0, 9]))?;
        assert_eq!(t.to_f64_vec(), [258.0, 9.0]);
        let t =
            read_npy(&handmade("{\"shape\": [1], \"fortran_order\": False, \"descr\": \"=f4\"}", &[0, 0, 128, 63]))?;
        assert_eq!(t.to_f64_vec(), [1.0]);
        let t = read_npy(&handmade("{'descr': 'b1', 'fortran_order': False, 'shape': (3,)}", &[0, 1, 7]))?;
        assert_eq!(t.bytes(), [0, 1, 1], "bools are normalized to 0/1");
        Ok(())
    }

    #[test]
    fn fortran_to_c_handles_many_axes() {
        // shape (2, 3, 4): element (i, j, k) lives at i + 2j + 6k in Fortran order.
        let shape = [2, 3, 4];
        let mut fortran = vec![0u8; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    fortran[i + 2 * j + 6 * k] = (i * 12 + j * 4 + k) as u8;
                }
            }
        }
        assert_eq!(fortran_to_c(&fortran, &shape, 1), (0..24).collect::<Vec<u8>>());
    }

    fn err(bytes: &[u8]) -> String {
        match read_npy(bytes) {
            Ok(t) => format!("unexpectedly read {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn clear_errors_for_bad_files() -> Result<()> {
        let good = write_npy(&sample(DType::Float32, &[4])?);
        let e = err(&good[..good.len() - 3]);
        assert!(e.contains("truncated .npy data") && e.contains("16 bytes") && e.contains("13 bytes"), "{e}");
        let e = err(&good[..40]);
        assert!(e.contains("truncated .npy: the header should be"), "{e}");
        let e = err(&good[..7]);
        assert!(e.contains("truncated"), "{e}");
        let mut extra = good.clone();
        extra.push(0);
        assert!(err(&extra).contains("1 unexpected bytes"));
        assert!(err(b"PK\x03\x04").contains("not a .npy array"));
        let mut v9 = good.clone();
        v9[6] = 9;
        assert!(err(&v9).contains("unsupported .npy format version 9.0"));

        let e = err(&handmade("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", &[0; 8]));
        assert!(e.contains("'<c8'") && e.contains("complex"), "{e}");
        let e = err(&handmade("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", &[0; 8]));
        assert!(e.contains("object arrays"), "{e}");
        let e = err(&handmade("{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}", &[0; 12]));
        assert!(e.contains("'<U3'") && e.contains("unicode"), "{e}");
        let e = err(&handmade("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", &[0; 4]));
        assert!(e.contains("structured"), "{e}");
        let e = err(&handmade("{'descr': '<f4', 'shape': (1,)}", &[0; 4]));
        assert!(e.contains("no 'fortran_order' key"), "{e}");
        let e = err(&handmade("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", &[0; 4]));
        assert!(e.contains("bad shape"), "{e}");
        let e = err(&handmade("{'descr': '<f4', 'fortran_order': Fals", &[]));
        assert!(e.contains("corrupt .npy header"), "{e}");
        let e = err(&handmade("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", &[]));
        assert!(e.contains("too large"), "{e}");
        let deep = format!("{}{}", "(".repeat(100), ")".repeat(100));
        assert!(err(&handmade(&deep, &[])).contains("nested too deeply"));
        Ok(())
    }

    #[test]
    fn npz_round_trip_keeps_order_and_names() -> Result<()> {
        let tensors: Vec<(String, Tensor)> = DType::ALL
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| Ok((format!("/layer{i}/out:{}", d.name()), sample(d, &[i % 3 + 1, 2])?)))
            .collect::<Result<_>>()?;
        let bytes = write_npz(&tensors)?;
        assert_eq!(read_npz(&bytes)?, tensors);
        assert_eq!(read_npz(&write_npz(&[])?)?, vec![]);
        Ok(())
    }

    #[test]
    fn npz_errors_name_the_member() -> Result<()> {
        let t = sample(DType::Int8, &[2])?;
        let dup = write_npz(&[("a".into(), t.clone()), ("a".into(), t.clone())]);
        assert!(dup.is_err_and(|e| e.to_string().contains("'a' appears twice")));
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let fail = |e: &dyn std::fmt::Display| Error::input(e.to_string());
        zip.start_file("bad.npy", zip::write::SimpleFileOptions::default()).map_err(|e| fail(&e))?;
        zip.write_all(&write_npy(&t)[..70]).map_err(|e| fail(&e))?;
        let bytes = zip.finish().map_err(|e| fail(&e))?.into_inner();
        let e = read_npz(&bytes).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.contains(".npz member 'bad.npy': truncated")), "{e:?}");
        assert!(read_npz(b"not a zip").is_err_and(|e| e.to_string().contains("not a readable .npz")));
        Ok(())
    }
}
