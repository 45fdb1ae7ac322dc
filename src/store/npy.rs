//! NumPy `.npy` (format 1.0) writing for large descriptor matrices: little-endian float32,
//! C order, shape (rows, cols); `numpy.load` reads it as is.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `rows` (all of equal length) as a (n, d) float32 `.npy` file.
pub fn write_npy(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let d = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != d) {
        return Err(Error::InvalidParam("rows differ in length".into()));
    }
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        d
    );
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let tmp = path.with_extension("npy.tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::new(f);
    let io = |e| Error::io(&tmp, e);
    w.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    w.write_all(&(header.len() as u16).to_le_bytes())
        .map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)?;
    for r in rows {
        for x in r {
            w.write_all(&x.to_le_bytes()).map_err(io)?;
        }
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_is_aligned() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npy");
        super::write_npy(&p, &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        let b = std::fs::read(&p).unwrap();
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert!(
            std::str::from_utf8(&b[10..10 + hl])
                .unwrap()
                .contains("'shape': (2, 2)")
        );
        assert_eq!(b.len(), 10 + hl + 16);
        assert_eq!(
            f32::from_le_bytes(b[10 + hl + 12..].try_into().unwrap()),
            4.0
        );
    }
}
