//! Boot Loader Specification entries (`/boot/loader.N/entries/*.conf`): the `key value`
//! lines ostree writes, kept in order so that fields we do not know survive a rewrite.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootEntry {
    fields: Vec<(String, String)>,
}

impl BootEntry {
    /// Parses an entry; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> BootEntry {
        let fields = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| match line.split_once(char::is_whitespace) {
                Some((key, value)) => (key.to_owned(), value.trim().to_owned()),
                None => (line.to_owned(), String::new()),
            })
            .collect();
        BootEntry { fields }
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a field, in place if it exists, else at the end.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key.to_owned(), value)),
        }
    }

    pub fn to_text(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect()
    }

    /// The `version` field as a number, for ordering: the highest boots first.
    pub fn sort_version(&self) -> u64 {
        self.get("version")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fields_in_order() {
        let text = "title Fedora CoreOS 40 (ostree:0)\nversion 2\n# comment\n\noptions root=UUID=x rw ostree=/ostree/boot.1/fcos/abc/0\nlinux /ostree/fcos-abc/vmlinuz-6.1\n";
        let entry = BootEntry::parse(text);
        assert_eq!(entry.get("version"), Some("2"));
        assert_eq!(entry.sort_version(), 2);
        assert_eq!(
            entry.get("options"),
            Some("root=UUID=x rw ostree=/ostree/boot.1/fcos/abc/0")
        );
        assert_eq!(
            entry.to_text(),
            "title Fedora CoreOS 40 (ostree:0)\nversion 2\noptions root=UUID=x rw ostree=/ostree/boot.1/fcos/abc/0\nlinux /ostree/fcos-abc/vmlinuz-6.1\n"
        );
    }
}
