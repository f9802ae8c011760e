//! Byte-level writers for the pieces of a shop-events line: fixed-width digits, cents, 48-bit hex and
//! `YYYY-MM-DDTHH:MM:SS.sssZ` timestamps. They append to a caller's `Vec<u8>` and never allocate
//! beyond it, which is what keeps the generator above a couple of million lines a second.

const HEX: &[u8; 16] = b"0123456789abcdef";
const MS_PER_DAY: i64 = 86_400_000;

/// `width` decimal digits of `v`, zero-padded; `v` must be below 10^width (higher digits are dropped).
#[inline]
pub(super) fn push_fixed(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let w = width.min(20);
    for slot in buf[..w].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..w]);
}

/// Decimal digits of `v` without padding.
#[inline]
pub(super) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// An amount in cents as `[-]int.dd`: `0.00`, `20.40`, `-7.05`.
#[inline]
pub(super) fn push_cents(out: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        out.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_u64(out, c / 100);
    out.push(b'.');
    push_fixed(out, c % 100, 2);
}

/// The low 48 bits of `v` as 12 lowercase hex digits.
#[inline]
pub(super) fn push_hex48(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 12];
    for (k, slot) in buf.iter_mut().enumerate() {
        *slot = HEX[((v >> (44 - 4 * k)) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

/// Formats Unix-epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.sssZ`, remembering the last day's date
/// text because consecutive lines almost always fall on the same day.
pub(super) struct TsWriter {
    day: i64,
    date: [u8; 10],
}

impl TsWriter {
    pub(super) fn new() -> Self {
        Self {
            day: i64::MIN,
            date: [0; 10],
        }
    }

    #[inline]
    pub(super) fn push(&mut self, out: &mut Vec<u8>, ms: i64) {
        let day = ms.div_euclid(MS_PER_DAY);
        let in_day = ms.rem_euclid(MS_PER_DAY) as u64;
        if day != self.day {
            let (y, m, d) = civil_from_days(day);
            // Years outside 0..=9999 cannot be written in this form; they wrap rather than panic.
            // Only a start_ms tens of thousands of years from now gets there.
            let y = y.rem_euclid(10_000) as u64;
            let mut date = *b"0000-00-00";
            two(&mut date[0..2], y / 100);
            two(&mut date[2..4], y % 100);
            two(&mut date[5..7], u64::from(m));
            two(&mut date[8..10], u64::from(d));
            self.date = date;
            self.day = day;
        }
        out.extend_from_slice(&self.date);
        let secs = in_day / 1000;
        let mut t = [0u8; 14]; // THH:MM:SS.sssZ
        t[0] = b'T';
        two(&mut t[1..3], secs / 3600);
        t[3] = b':';
        two(&mut t[4..6], secs / 60 % 60);
        t[6] = b':';
        two(&mut t[7..9], secs % 60);
        t[9] = b'.';
        let ms_part = in_day % 1000;
        t[10] = b'0' + (ms_part / 100) as u8;
        t[11] = b'0' + (ms_part / 10 % 10) as u8;
        t[12] = b'0' + (ms_part % 10) as u8;
        t[13] = b'Z';
        out.extend_from_slice(&t);
    }
}

#[inline]
fn two(dst: &mut [u8], v: u64) {
    dst[0] = b'0' + (v / 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers() {
        assert_eq!(s(|o| push_fixed(o, 42, 6)), "000042");
        assert_eq!(s(|o| push_fixed(o, 99_999, 5)), "99999");
        assert_eq!(s(|o| push_u64(o, 0)), "0");
        assert_eq!(s(|o| push_u64(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(s(|o| push_cents(o, 0)), "0.00");
        assert_eq!(s(|o| push_cents(o, 2040)), "20.40");
        assert_eq!(s(|o| push_cents(o, -705)), "-7.05");
        assert_eq!(s(|o| push_cents(o, 1_250_000)), "12500.00");
        assert_eq!(s(|o| push_hex48(o, 0x6bdf_aeb6_3bb0)), "6bdfaeb63bb0");
        assert_eq!(s(|o| push_hex48(o, 0xff)), "0000000000ff");
    }

    #[test]
    fn timestamps_match_chrono() {
        let mut w = TsWriter::new();
        let spec_start = 1_768_435_200_000_i64;
        for ms in [
            0,
            spec_start,
            spec_start + 86_399_999,
            spec_start + 86_400_000,
            951_782_400_000,   // 2000-02-29
            4_107_542_399_999, // 2100-02-28T23:59:59.999
            -1,
            253_402_300_799_999, // 9999-12-31T23:59:59.999
        ] {
            let want = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(s(|o| w.push(o, ms)), want, "ms = {ms}");
        }
        let mut t = spec_start - 3 * 86_400_000;
        while t < spec_start + 400 * 86_400_000 {
            let want = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(s(|o| w.push(o, t)), want);
            t += 7_654_321;
        }
    }
}
