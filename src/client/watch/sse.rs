//! Server-sent events read from a stream of bytes, as the HTML standard's
//! "event stream interpretation" says: fields `id`, `event`, `data` and
//! `retry`, comments, and an event dispatched at each blank line.
#![forbid(unsafe_code)]

/// The longest line or event taken; dynport's largest event (a scan of a
/// whole range) is far below it.
const MAX_EVENT: usize = 4 * 1024 * 1024;

/// One event as the stream framed it.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    /// Its `id` field, when it had one.
    pub id: Option<String>,
    /// Its `event` field; `message` when it had none.
    pub kind: String,
    /// Its `data` lines, joined by `\n`.
    pub data: String,
}

/// The events of one stream, parsed as its bytes arrive.
#[derive(Debug, Default)]
pub struct Parser {
    /// The bytes of a line not yet ended.
    line: Vec<u8>,
    /// Whether the last byte taken was a `\r`, so that a `\n` right after
    /// it ends no second line.
    after_cr: bool,
    id: Option<String>,
    kind: Option<String>,
    data: Option<String>,
    /// The last `retry` field: how long to wait before reconnecting, in ms.
    pub retry: Option<u64>,
}

impl Parser {
    /// Takes the next bytes of the stream and hands each event they
    /// complete to `on_event`. An event or line over [`MAX_EVENT`] bytes is
    /// an error.
    pub fn feed(&mut self, bytes: &[u8], on_event: &mut dyn FnMut(Event)) -> Result<(), String> {
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.take_line(&line) {
                        on_event(event);
                    }
                }
                _ => self.line.push(b),
            }
            let held = self.line.len() + self.data.as_ref().map_or(0, String::len);
            if held > MAX_EVENT {
                return Err(format!("an event of more than {MAX_EVENT} bytes"));
            }
        }
        Ok(())
    }

    /// Takes one whole line; a blank line ends the event.
    fn take_line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.kind = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "retry" => self.retry = value.parse().ok().or(self.retry),
            _ => {}
        }
        None
    }

    /// The event gathered so far, when it has data; either way the next
    /// event starts afresh.
    fn dispatch(&mut self) -> Option<Event> {
        let id = self.id.take();
        let kind = self.kind.take();
        let data = self.data.take()?;
        Some(Event {
            id,
            kind: kind.unwrap_or_else(|| "message".to_string()),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut |e| out.push(e)).unwrap();
        }
        (out, parser)
    }

    fn event(id: Option<&str>, kind: &str, data: &str) -> Event {
        Event {
            id: id.map(str::to_string),
            kind: kind.to_string(),
            data: data.to_string(),
        }
    }

    #[test]
    fn reads_dynports_stream_in_any_pieces() {
        let stream = b"retry: 1000\n\nid: 7\nevent: port\ndata: {\"from\":1,\"to\":2}\n\n\
                       : keepalive\n\nid: 8\nevent: scan\ndata: {}\n\n";
        let expected = vec![
            event(Some("7"), "port", r#"{"from":1,"to":2}"#),
            event(Some("8"), "scan", "{}"),
        ];
        for size in [1, 2, 5, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(size).collect();
            let (got, parser) = events(&chunks);
            assert_eq!(got, expected, "pieces of {size}");
            assert_eq!(parser.retry, Some(1000));
        }
    }

    #[test]
    fn any_line_ending_and_data_lines_joined() {
        let (got, _) = events(&[b"event: a\r\ndata: x\r\ndata:y\r\rdata: z\r", b"\n\n"]);
        assert_eq!(
            got,
            vec![event(None, "a", "x\ny"), event(None, "message", "z")]
        );
    }

    #[test]
    fn an_event_without_data_is_dropped_and_its_fields_forgotten() {
        let (got, _) = events(&[b"id: 3\nevent: lease\n\ndata: 1\n\n"]);
        assert_eq!(got, vec![event(None, "message", "1")]);
    }

    #[test]
    fn an_event_without_end_is_held_back() {
        let (got, mut parser) = events(&[b"id: 3\nevent: lease\ndata: 1\n"]);
        assert_eq!(got, vec![]);
        let mut later = Vec::new();
        parser.feed(b"\n", &mut |e| later.push(e)).unwrap();
        assert_eq!(later, vec![event(Some("3"), "lease", "1")]);
    }

    #[test]
    fn a_huge_line_is_refused() {
        let mut parser = Parser::default();
        let huge = vec![b'x'; MAX_EVENT + 1];
        let err = parser.feed(&huge, &mut |_| {}).unwrap_err();
        assert_eq!(err, format!("an event of more than {MAX_EVENT} bytes"));
    }
}
