//! Reading RESP off the wire: where a client's command and a server's reply end.
use super::Command;

/// The first complete command in `buf` and its length; `None` if it is not all there yet.
pub(super) fn parse_command(buf: &[u8]) -> Result<Option<(Command, usize)>, ()> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        // An inline command: one line, arguments separated by spaces.
        let Some(end) = find_crlf(buf, 0).or_else(|| buf.iter().position(|b| *b == b'\n')) else {
            return Ok(None);
        };
        let line_end = if buf.get(end) == Some(&b'\r') { end + 2 } else { end + 1 };
        let args = buf[..end]
            .split(|b| *b == b' ')
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(Some((Command { args }, line_end)));
    }
    let Some((count, mut at)) = header(buf, 0)? else {
        return Ok(None);
    };
    let mut args = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return Err(());
        }
        let Some((len, body)) = header(buf, at)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| ())?;
        if buf.len() < body + len + 2 {
            return Ok(None);
        }
        args.push(buf[body..body + len].to_vec());
        at = body + len + 2;
    }
    Ok(Some((Command { args }, at)))
}

/// The length of the first complete reply in `buf`; `None` if it is not all there yet.
pub(super) fn reply_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut at = 0;
    // Elements still to read, for the aggregates we are inside of.
    let mut remaining: usize = 1;
    while remaining > 0 {
        if at >= buf.len() {
            return Ok(None);
        }
        remaining -= 1;
        match buf[at] {
            // Simple string, error, integer, RESP3 null, double, boolean, big number.
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => match find_crlf(buf, at) {
                Some(end) => at = end + 2,
                None => return Ok(None),
            },
            // Bulk string, RESP3 blob error and verbatim string; -1 is a null.
            b'$' | b'!' | b'=' => {
                let Some((len, body)) = header(buf, at)? else {
                    return Ok(None);
                };
                at = if len < 0 { body } else { body + len as usize + 2 };
                if at > buf.len() {
                    return Ok(None);
                }
            }
            // Array and set (N elements), map (N pairs); -1 is a null.
            kind @ (b'*' | b'~' | b'%') => {
                let Some((count, body)) = header(buf, at)? else {
                    return Ok(None);
                };
                let per = if kind == b'%' { 2 } else { 1 };
                remaining += count.max(0) as usize * per;
                at = body;
            }
            _ => return Err(()),
        }
    }
    Ok(Some(at))
}

/// The number after the type byte at `at`, and where the line after it starts.
fn header(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, ()> {
    let Some(end) = find_crlf(buf, at) else {
        return Ok(None);
    };
    let number = std::str::from_utf8(&buf[at + 1..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(())?;
    Ok(Some((number, end + 2)))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_when_complete() {
        let wire = b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let (command, len) = parse_command(wire).unwrap().unwrap();
        assert_eq!(command.args(), [b"INCR".to_vec(), b"k".to_vec()]);
        assert!(command.is("incr"));
        let (command, rest) = parse_command(&wire[len..]).unwrap().unwrap();
        assert!(command.is("PING"));
        assert_eq!(len + rest, wire.len());
        for cut in 0..len {
            assert_eq!(parse_command(&wire[..cut]).unwrap(), None, "{cut} bytes");
        }
        let (inline, len) = parse_command(b"PING hello\r\n").unwrap().unwrap();
        assert_eq!((inline.args().len(), len), (2, 12));
        assert!(parse_command(b"*1\r\n:3\r\n").is_err());
    }

    #[test]
    fn replies_are_measured_when_complete() {
        let replies: [&[u8]; 7] = [
            b"+OK\r\n",
            b"-ERR no\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$5\r\nhello\r\n",
            b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*-1\r\n",
            b"%1\r\n+k\r\n~2\r\n_\r\n#t\r\n",
        ];
        for reply in replies {
            let mut wire = reply.to_vec();
            wire.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(
                reply_len(&wire).unwrap(),
                Some(reply.len()),
                "{:?}",
                String::from_utf8_lossy(reply)
            );
            for cut in 0..reply.len() {
                assert_eq!(reply_len(&reply[..cut]).unwrap(), None);
            }
        }
        assert!(reply_len(b"?\r\n").is_err());
    }
}
