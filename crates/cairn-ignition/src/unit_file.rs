//! systemd unit file syntax as Ignition checks it (go-systemd's `unit.DeserializeOptions`):
//! sections, `Name=value` lines, comments, backslash continuations, and systemd's 2048-byte
//! line limit. The limit is checked the way the Go lexer does, through a 4096-byte read
//! buffer, so that a unit cairn accepts is exactly one Ignition accepts.

/// One `Name=value` line and the section it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnitOption {
    pub section: String,
    pub name: String,
}

/// systemd's LINE_MAX as go-systemd assumes it.
const LINE_MAX: usize = 2048;
/// bufio's default buffer, which decides when the Go lexer can see a long line.
const BUFFER_SIZE: usize = 4096;

/// Parses unit contents; the error text is what follows "invalid unit content: ".
pub(crate) fn parse(contents: &str) -> Result<Vec<UnitOption>, String> {
    let mut lexer = Lexer {
        reader: Reader::new(contents),
        options: Vec::new(),
    };
    let mut step = Step::NextSection;
    loop {
        if lexer.reader.buffered() >= LINE_MAX {
            let window = lexer.reader.window(LINE_MAX);
            if !window.iter().any(|b| *b == b'\r' || *b == b'\n') {
                return Err(format!("line too long (max {LINE_MAX} bytes)"));
            }
        }
        step = match lexer.step(step)? {
            Some(next) => next,
            None => return Ok(lexer.options),
        };
    }
}

enum Step {
    NextSection,
    SectionName,
    SectionSuffix(String),
    NextSectionOrOption(String),
    IgnoreLine(Box<Step>),
    OptionName(String),
    OptionValue { section: String, name: String },
}

struct Lexer<'a> {
    reader: Reader<'a>,
    options: Vec<UnitOption>,
}

fn is_comment(c: char) -> bool {
    c == '#' || c == ';'
}

impl Lexer<'_> {
    fn step(&mut self, step: Step) -> Result<Option<Step>, String> {
        Ok(Some(match step {
            Step::NextSection => match self.reader.read_char() {
                None => return Ok(None),
                Some('[') => Step::SectionName,
                Some(c) if is_comment(c) => Step::IgnoreLine(Box::new(Step::NextSection)),
                Some(_) => Step::NextSection,
            },
            Step::SectionName => match self.reader.read_until(b']') {
                (name, true) => Step::SectionSuffix(name[..name.len() - 1].to_owned()),
                (_, false) => return Err("unable to find end of section".into()),
            },
            Step::SectionSuffix(section) => {
                let (garbage, _) = self.reader.read_line();
                let garbage = garbage.trim();
                if !garbage.is_empty() {
                    return Err(format!(
                        "found garbage after section name {section:?}: {garbage:?}"
                    ));
                }
                Step::NextSectionOrOption(section)
            }
            Step::IgnoreLine(next) => {
                loop {
                    let (line, _) = self.reader.read_line();
                    // go-systemd trims a single trailing space before looking for `\`.
                    let line = line.strip_suffix(' ').unwrap_or(line);
                    if !line.ends_with('\\') {
                        break;
                    }
                }
                *next
            }
            Step::NextSectionOrOption(section) => match self.reader.read_char() {
                None => return Ok(None),
                Some(c) if c.is_whitespace() => Step::NextSectionOrOption(section),
                Some('[') => Step::SectionName,
                Some(c) if is_comment(c) => {
                    Step::IgnoreLine(Box::new(Step::NextSectionOrOption(section)))
                }
                Some(_) => {
                    self.reader.unread_char();
                    Step::OptionName(section)
                }
            },
            Step::OptionName(section) => {
                let mut name = String::new();
                loop {
                    match self.reader.read_char() {
                        // The Go lexer passes io.EOF on as the error.
                        None => return Err("EOF".into()),
                        Some('\n') | Some('\r') => {
                            return Err(
                                "unexpected newline encountered while parsing option name".into()
                            )
                        }
                        Some('=') => break,
                        Some(c) => name.push(c),
                    }
                }
                Step::OptionValue {
                    section,
                    name: name.trim().to_owned(),
                }
            }
            Step::OptionValue { section, name } => {
                let (line, _) = self.reader.read_line();
                if !line.trim().is_empty() && line.ends_with('\\') {
                    // A continuation: the value goes on on the next line.
                    return Ok(Some(Step::OptionValue { section, name }));
                }
                self.options.push(UnitOption {
                    section: section.clone(),
                    name,
                });
                Step::NextSectionOrOption(section)
            }
        }))
    }
}

/// A simulation of Go's `bufio.Reader` over a string: positions are byte offsets into the
/// input, `[read, write)` is what the buffer holds.
struct Reader<'a> {
    input: &'a str,
    read: usize,
    write: usize,
    eof_pending: bool,
    last_char_len: Option<usize>,
}

impl<'a> Reader<'a> {
    fn new(input: &'a str) -> Self {
        Reader {
            input,
            read: 0,
            write: 0,
            eof_pending: false,
            last_char_len: None,
        }
    }

    fn buffered(&self) -> usize {
        self.write - self.read
    }

    /// The next `n` buffered bytes (the caller checked that they are buffered).
    fn window(&self, n: usize) -> &'a [u8] {
        &self.input.as_bytes()[self.read..self.read + n]
    }

    fn fill(&mut self) {
        if self.write == self.input.len() {
            self.eof_pending = true;
        } else {
            self.write = (self.read + BUFFER_SIZE).min(self.input.len());
        }
    }

    fn read_char(&mut self) -> Option<char> {
        self.last_char_len = None;
        // Reads happen only at character boundaries; `get` keeps a mistake from panicking.
        let next = self
            .input
            .get(self.read..)
            .and_then(|rest| rest.chars().next());
        let want = next.map_or(1, char::len_utf8);
        while self.buffered() < want && !self.eof_pending {
            self.fill();
        }
        if self.read == self.write {
            self.eof_pending = false;
            return None;
        }
        let c = next?;
        self.read += c.len_utf8();
        self.last_char_len = Some(c.len_utf8());
        Some(c)
    }

    fn unread_char(&mut self) {
        if let Some(len) = self.last_char_len.take() {
            self.read -= len;
        }
    }

    /// Reads through the next `delim`; false if the input ended first.
    fn read_until(&mut self, delim: u8) -> (&'a str, bool) {
        self.last_char_len = None;
        let start = self.read;
        loop {
            let buffered = &self.input.as_bytes()[self.read..self.write];
            if let Some(i) = buffered.iter().position(|b| *b == delim) {
                self.read += i + 1;
                return (self.input.get(start..self.read).unwrap_or(""), true);
            }
            if self.eof_pending {
                self.read = self.write;
                self.eof_pending = false;
                return (self.input.get(start..self.read).unwrap_or(""), false);
            }
            if self.buffered() >= BUFFER_SIZE {
                self.read = self.write;
            }
            self.fill();
        }
    }

    /// go-systemd's `toEOL`: a line without its `\n` (and a `\r` only if no `\n` followed).
    fn read_line(&mut self) -> (&'a str, bool) {
        let (line, found) = self.read_until(b'\n');
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.strip_suffix('\n').unwrap_or(line);
        (line, !found)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn sections(contents: &str) -> Vec<String> {
        parse(contents)
            .unwrap()
            .into_iter()
            .map(|o| format!("{}.{}", o.section, o.name))
            .collect()
    }

    #[test]
    fn reads_options_by_section() {
        let unit = "# comment \\\ncontinued\n[Unit]\nDescription=x \\\n  more\n\n[Install]\n WantedBy = multi-user.target\n";
        assert_eq!(sections(unit), ["Unit.Description", "Install.WantedBy"]);
        assert_eq!(sections(""), Vec::<String>::new());
        assert_eq!(sections("junk before=any section\n[A]\nx=1"), ["A.x"]);
    }

    #[test]
    fn rejects_what_go_systemd_rejects() {
        assert!(parse("[Unit").unwrap_err().contains("end of section"));
        assert!(parse("[Unit] x\n").unwrap_err().contains("garbage"));
        assert!(parse("[Unit]\nNoEquals\n").unwrap_err().contains("newline"));
        assert_eq!(parse("[Unit]\nNoEquals").unwrap_err(), "EOF");
        let long = format!("[Unit]\nDescription={}\n", "x".repeat(2100));
        assert!(parse(&long).unwrap_err().contains("too long"));
        let fine = format!("[Unit]\nDescription={}\n", "x".repeat(2000));
        assert!(parse(&fine).is_ok());
    }
}
