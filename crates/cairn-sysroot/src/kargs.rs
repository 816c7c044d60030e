//! Kernel arguments of a deployment, edited with ostree's `--karg`, `--karg-append` and
//! `--karg-delete` meanings. Quoted values (`key="a b"`) stay one argument.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kargs(Vec<String>);

fn key_of(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

impl Kargs {
    /// Splits a command line on unquoted whitespace.
    pub fn parse(cmdline: &str) -> Kargs {
        let mut args = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in cmdline.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    current.push(c);
                }
                c if c.is_whitespace() && !quoted => {
                    if !current.is_empty() {
                        args.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            args.push(current);
        }
        Kargs(args)
    }

    pub fn args(&self) -> &[String] {
        &self.0
    }

    /// The value of the first argument named `key` (`None` if absent, `Some("")` for a bare flag).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|a| key_of(a) == key)
            .map(|a| a.split_once('=').map_or("", |(_, v)| v))
    }

    /// Adds an argument at the end, even if its key is already present.
    pub fn append(&mut self, arg: &str) {
        self.0.push(arg.to_owned());
    }

    /// Appends unless this exact argument is already present.
    pub fn append_if_missing(&mut self, arg: &str) {
        if !self.0.iter().any(|a| a == arg) {
            self.append(arg);
        }
    }

    /// Sets `key=value`: the first argument with that key takes the new value and any
    /// others with the key go; absent keys are appended (ostree `--karg`).
    pub fn replace(&mut self, arg: &str) {
        let key = key_of(arg);
        match self.0.iter().position(|a| key_of(a) == key) {
            Some(first) => {
                self.0[first] = arg.to_owned();
                let mut index = 0;
                self.0.retain(|a| {
                    let keep = index == first || key_of(a) != key;
                    index += 1;
                    keep
                });
            }
            None => self.append(arg),
        }
    }

    /// Removes `key=value` exactly, or every argument named `key` when no value is given.
    /// Returns whether anything was removed.
    pub fn delete(&mut self, arg: &str) -> bool {
        let before = self.0.len();
        if arg.contains('=') {
            self.0.retain(|a| a != arg);
        } else {
            self.0.retain(|a| key_of(a) != arg);
        }
        self.0.len() != before
    }

    pub fn to_cmdline(&self) -> String {
        self.0.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_follow_ostree_meanings() {
        let mut k = Kargs::parse("root=LABEL=root rw  console=tty0 console=ttyS0 x=\"a b\"");
        assert_eq!(k.args().len(), 5);
        assert_eq!(k.value("x"), Some("\"a b\""));
        assert_eq!(k.value("root"), Some("LABEL=root"));
        k.replace("console=ttyS1");
        assert_eq!(k.to_cmdline(), "root=LABEL=root rw console=ttyS1 x=\"a b\"");
        k.append("quiet");
        k.append_if_missing("quiet");
        assert!(k.delete("rw"));
        assert!(!k.delete("console=tty0"));
        assert_eq!(
            k.to_cmdline(),
            "root=LABEL=root console=ttyS1 x=\"a b\" quiet"
        );
    }
}
