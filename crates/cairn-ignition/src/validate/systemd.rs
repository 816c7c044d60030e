//! Rules for `systemd.units`: unit and drop-in names, unit file syntax, install sections.

use std::collections::HashMap;

use super::{non_empty, At, Validator};
use crate::model::{Systemd, Unit};
use crate::{gopath, unit_file};

const UNIT_SUFFIXES: [&str; 12] = [
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".snapshot",
    ".slice",
    ".scope",
];
const INVALID_UNIT_SUFFIX: &str = "invalid systemd unit extension";
const INVALID_DROPIN_SUFFIX: &str = "invalid systemd drop-in extension";
const MASKED_WITH_CONTENTS: &str =
    "unit is masked: systemd will ignore its contents (cairn warning, not an Ignition rule)";
const MASKED_AND_ENABLED: &str =
    "unit is both masked and enabled: a masked unit cannot start (cairn warning, not an Ignition rule)";

impl Validator {
    pub(super) fn systemd(&mut self, systemd: &Systemd, at: &At) {
        let units_at = at.k("units");
        for (index, unit) in systemd.units.iter().enumerate() {
            self.unit(unit, &units_at.i(index));
        }
        self.duplicates(&units_at, systemd.units.iter().map(|u| u.name.as_str()));
        self.instances_without_install(systemd, &units_at);
    }

    fn unit(&mut self, unit: &Unit, at: &At) {
        if !UNIT_SUFFIXES.contains(&gopath::ext(&unit.name)) {
            self.error(&at.k("name"), INVALID_UNIT_SUFFIX);
        }
        let contents_at = at.k("contents");
        let options = match unit.contents.as_deref() {
            None => Some(Vec::new()),
            Some(contents) => match unit_file::parse(contents) {
                Ok(options) => Some(options),
                Err(e) => {
                    self.error(&contents_at, format!("invalid unit content: {e}"));
                    None
                }
            },
        };
        // `enabled` acts through [Install]; a unit with contents but none cannot be enabled.
        if let Some(options) = options {
            if unit.enabled == Some(true)
                && non_empty(&unit.contents)
                && !options.iter().any(|o| o.section == "Install")
            {
                let message = format!(
                    "unit {:?} is enabled, but has no install section so enable does nothing",
                    unit.name
                );
                self.warning(&contents_at, message);
            }
        }
        if unit.mask == Some(true) {
            if non_empty(&unit.contents) {
                self.warning(&contents_at, MASKED_WITH_CONTENTS);
            }
            if unit.enabled == Some(true) {
                self.warning(&at.k("enabled"), MASKED_AND_ENABLED);
            }
        }

        let dropins_at = at.k("dropins");
        for (index, dropin) in unit.dropins.iter().enumerate() {
            let dropin_at = dropins_at.i(index);
            if let Some(contents) = dropin.contents.as_deref() {
                if let Err(e) = unit_file::parse(contents) {
                    self.error(
                        &dropin_at.k("contents"),
                        format!("invalid unit content: {e}"),
                    );
                }
            }
            if gopath::ext(&dropin.name) != ".conf" {
                self.error(&dropin_at.k("name"), INVALID_DROPIN_SUFFIX);
            }
        }
        self.duplicates(&dropins_at, unit.dropins.iter().map(|d| d.name.as_str()));
    }

    /// An enabled instance `foo@bar.service` whose template `foo@.service` is in the config
    /// with contents but without [Install] cannot be enabled either.
    fn instances_without_install(&mut self, systemd: &Systemd, units_at: &At) {
        let by_name: HashMap<&str, &Unit> =
            systemd.units.iter().map(|u| (u.name.as_str(), u)).collect();
        for (index, unit) in systemd.units.iter().enumerate() {
            if unit.enabled != Some(true) {
                continue;
            }
            let Some(template) = template_name(&unit.name) else {
                continue;
            };
            let Some(template_unit) = by_name.get(template.as_str()) else {
                continue;
            };
            let Some(contents) = template_unit.contents.as_deref().filter(|c| !c.is_empty()) else {
                continue;
            };
            // Bad template contents are reported on the template itself.
            let Ok(options) = unit_file::parse(contents) else {
                continue;
            };
            if !options.iter().any(|o| o.section == "Install") {
                let message = format!(
                    "template unit {template:?} for {:?} doesn't have Install section",
                    unit.name
                );
                self.warning(&units_at.i(index).k("contents"), message);
            }
        }
    }
}

/// `foo@bar.service` → `foo@.service` (Ignition's `^(.+?)@(.+?)\.service$`).
fn template_name(name: &str) -> Option<String> {
    if name.contains('\n') {
        return None;
    }
    let stem = name.strip_suffix(".service")?;
    let at = stem
        .char_indices()
        .find(|(i, c)| *c == '@' && *i > 0 && *i + 1 < stem.len())
        .map(|(i, _)| i)?;
    Some(format!("{}@.service", &stem[..at]))
}

#[cfg(test)]
mod tests {
    use super::template_name;

    #[test]
    fn template_names() {
        assert_eq!(
            template_name("foo@bar.service").as_deref(),
            Some("foo@.service")
        );
        assert_eq!(
            template_name("a@b@c.service").as_deref(),
            Some("a@.service")
        );
        assert_eq!(
            template_name("@a@b.service").as_deref(),
            Some("@a@.service")
        );
        assert_eq!(template_name("foo@.service"), None);
        assert_eq!(template_name("foo@bar.socket"), None);
    }
}
