//! Human durations as written in the config file: `"90s"`, `"15m"`, `"1h30m"`, `"500ms"`, `"7d"`.

use std::fmt;
use std::time::Duration;

/// Parses a duration made of one or more `<number><unit>` parts.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty; write a duration like \"90s\", \"15m\" or \"1h\"".to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "\"{text}\" is not a duration; write one like \"90s\", \"15m\" or \"1h\""
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("\"{text}\" has a number that is too large"))?;
        let unit_secs = match unit {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86_400),
            "" => {
                return Err(format!(
                    "\"{text}\" needs a unit: ms, s, m, h or d (e.g. \"{number}s\")"
                ));
            }
            other => {
                return Err(format!(
                    "\"{text}\" has an unknown unit \"{other}\"; use ms, s, m, h or d"
                ));
            }
        };
        let part = match unit_secs {
            None => Duration::from_millis(number),
            Some(secs) => number
                .checked_mul(secs)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("\"{text}\" is too long"))?,
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("\"{text}\" is too long"))?;
        rest = after;
    }
    Ok(total)
}

/// Shows a duration the way users write it (`1h30m`, `90s` becomes `1m30s`, `500ms`).
pub(crate) struct Human(pub(crate) Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        if millis % 1000 != 0 {
            return write!(f, "{millis}ms");
        }
        let mut secs = self.0.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("90s", Duration::from_secs(90)),
            ("15m", Duration::from_secs(900)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_with_a_hint() {
        assert!(parse("60").unwrap_err().contains("needs a unit"));
        assert!(parse("1 hour").unwrap_err().contains("needs a unit"));
        assert!(parse("5y").unwrap_err().contains("unknown unit \"y\""));
        assert!(parse("").unwrap_err().contains("is empty"));
        assert!(parse("h").unwrap_err().contains("not a duration"));
        assert!(
            parse("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn displays_like_users_write() {
        assert_eq!(Human(Duration::from_secs(5400)).to_string(), "1h30m");
        assert_eq!(Human(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(Human(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(Human(Duration::from_secs(7200)).to_string(), "2h");
    }
}
