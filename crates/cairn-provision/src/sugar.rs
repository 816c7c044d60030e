//! The variant-level sugar of Butane (`fcos`, `flatcar`, `r4e`, `fiot`), applied to an
//! Ignition config that the base translation already produced, as Butane v0.23.0 applies
//! it (the same units, partitions and contents; compressed bytes may differ).
//!
//! What this covers, per Butane's `base/v0_*` and `config/{fcos,flatcar,r4e,fiot}/v1_*`:
//!
//! - `storage.filesystems[].with_mount_unit` (every spec whose base is v0_2 or later):
//!   a `.mount` unit, or a `.swap` unit for `format: swap` (base v0_4+), named by
//!   systemd path escaping; `Options=` from `mount_options`; `_netdev` and
//!   `remote-fs.target` when the device is a LUKS volume of `storage.luks` unlocked
//!   with Tang (base v0_3+). The units are merged *under* the user's units (the user's
//!   fields win, generated units come first), as Butane merges its rendered config as
//!   the parent.
//! - `boot_device` (fcos 1.3+): `layout` (x86_64, aarch64, ppc64le; s390x-eckd,
//!   s390x-zfcp, s390x-virt from 1.6), `luks` (`tpm2`, `tang` (with `advertisement`
//!   from 1.5), `threshold`, `discard` from 1.5, `device` and `cex` from 1.6) and
//!   `mirror.devices`, with Butane's partition layout, RAID and filesystems, merged with
//!   Ignition's merge rules.
//! - `grub.users` (fcos 1.5+): `/boot/grub2/user.cfg` appended with a `data:` URL chosen
//!   as Butane's `MakeDataURL` chooses it (percent-encoding, base64, or gzip when that is
//!   shorter; gzip by libdeflate), and the `/boot` filesystem.
//! - Validation errors Butane gives for the sugar (mount unit format/path, fcos 1.6+
//!   mount points outside `/etc` and `/var`, boot device layout/mirror/CEX/s390x rules,
//!   grub user fields) and the field filters of the variants (flatcar: Clevis or CEX;
//!   r4e/fiot: kernel arguments, disks, filesystems, LUKS, RAID), each at the YAML node
//!   Butane reports.
//!
//! - [`desugar_warnings`]: Butane's fcos partition warnings (reserved labels with other
//!   numbers; fcos 1.6+ partitions reused by label), which do not stop a translation.
//!
//! Keys a spec version does not know (`boot_device` in flatcar, `luks.discard` in fcos
//! 1.3, `with_mount_unit` in fcos 1.0, ...) are ignored, as Butane ignores unused keys
//! (it only warns).
//!
//! [`make_data_url`] is Butane's `MakeDataURL` for any resource (`inline`, `local`,
//! trees): RFC 2396 escaping (`-_.!~*'()` kept), base64, or Go-identical gzip, whichever
//! is shortest.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{json, Map, Value};

/// A YAML path element into the *Butane* document (snake_case keys as written by the user).
#[derive(Clone, Debug, PartialEq)]
pub enum DocPath {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
pub struct SugarError {
    /// Points at the offending YAML node.
    pub path: Vec<DocPath>,
    pub message: String,
}

impl fmt::Display for SugarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for elem in &self.path {
            match elem {
                DocPath::Key(k) => write!(f, ".{k}")?,
                DocPath::Index(i) => write!(f, ".{i}")?,
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SugarError {}

pub struct Variant<'a> {
    /// "fcos" | "flatcar" | "r4e" | "fiot"
    pub name: &'a str,
    /// The Butane spec version, e.g. (1,6,0).
    pub version: (u32, u32, u32),
}

/// `doc` is the whole Butane document as JSON (keys as in YAML, snake_case, e.g. boot_device, with_mount_unit).
/// `ign` is the Ignition config already produced by the base translation (camelCase Ignition keys; it contains
/// storage.filesystems[] etc. translated 1:1 from the YAML, in the same order as the YAML lists).
/// Apply every variant-level sugar to `ign`, as Butane does, in Butane's order; return errors for invalid sugar.
pub fn desugar(variant: &Variant, doc: &Value, ign: &mut Value) -> Result<(), Vec<SugarError>> {
    let spec = Spec::of(variant).map_err(|e| vec![e])?;
    strip_with_mount_unit(ign);

    // Read the sugar sections the spec knows (YAML decoding: type errors are fatal).
    let mut rd = Reader::default();
    let filesystems = if spec.base >= Base::V0_2 {
        read_filesystems(&mut rd, doc)
    } else {
        Vec::new()
    };
    let luks_tang = read_luks_tang_names(doc);
    let boot = match spec.boot {
        Some(level) => read_boot_device(&mut rd, doc, level, spec.base),
        None => None,
    };
    let grub = if spec.grub {
        read_grub(&mut rd, doc)
    } else {
        Vec::new()
    };
    if !rd.errors.is_empty() {
        return Err(rd.errors);
    }

    // Validation, as Butane does before translating.
    let mut errors = Vec::new();
    if spec.v1_6_checks {
        for fs in &filesystems {
            if let Some(path) = &fs.path {
                if fs.with_mount_unit && !allowed_mountpoint(path) {
                    errors.push(err(
                        fs_path(fs.index, "path"),
                        "path must be under /etc or /var if with_mount_unit is true",
                    ));
                }
            }
        }
    }
    for fs in &filesystems {
        validate_filesystem(fs, spec.base, &mut errors);
    }
    if let (Some(boot), Some(level)) = (&boot, spec.boot) {
        validate_boot_device(boot, level, &mut errors);
    }
    for (i, user) in grub.iter().enumerate() {
        if user.name.is_empty() {
            errors.push(err(grub_path(i, "name"), "field \"name\" is required"));
        }
        if user.password_hash.as_deref().is_none_or(str::is_empty) {
            errors.push(err(
                grub_path(i, "password_hash"),
                "field \"password_hash\" is required",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mode = MergeMode {
        ign_3_2_or_older: spec.ign <= (3, 2),
    };

    // Base translation: mount units, merged with the generated units as the parent.
    let units = mount_units(&filesystems, &luks_tang, spec.base);
    if !units.is_empty() {
        merge_into(ign, json!({ "systemd": { "units": units } }), &mode);
    }

    // fcos: boot_device, then grub.
    if let Some(boot) = &boot {
        if let Some(rendered) = render_boot_device(boot) {
            merge_into(ign, rendered, &mode);
        }
    }
    if !grub.is_empty() {
        merge_into(ign, render_grub(&grub), &mode);
    }

    // Fields the variant forbids, checked on the final config.
    let errors = apply_filters(spec.filters, ign);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(())
}

/// The warnings Butane gives for fcos partitions (they do not stop the translation):
/// a reserved partition label (`BIOS-BOOT`, `PowerPC-PReP-boot`, `EFI-SYSTEM`, `boot`,
/// `root`) with another partition number on a disk whose table is not wiped, and (fcos
/// 1.6+) a partition picked by label alone on a disk other than the boot disk. Paths
/// point at the YAML node, like [`desugar`]'s errors. Other variants have none.
pub fn desugar_warnings(variant: &Variant, doc: &Value) -> Vec<SugarError> {
    let Ok(spec) = Spec::of(variant) else {
        return Vec::new();
    };
    if variant.name != "fcos" {
        return Vec::new();
    }
    let Some(disks) = doc
        .get("storage")
        .and_then(|s| s.get("disks"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    // Disks that boot_device mirrors get `wipeTable: true` unless the user says otherwise.
    let mirrored: Vec<&str> = if spec.boot.is_some() {
        doc.get("boot_device")
            .and_then(|b| b.get("mirror"))
            .and_then(|m| m.get("devices"))
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let parse_bool = |v: Option<&Value>| Reader::default().boolean(v, &[]);
    let mut reuse = Vec::new();
    let mut reserved = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let Some(disk) = disk.as_object() else {
            continue;
        };
        let device = base_str(disk, "device").unwrap_or_default();
        let wipe_table = parse_bool(disk.get("wipe_table"));
        let Some(partitions) = disk.get("partitions").and_then(Value::as_array) else {
            continue;
        };
        let disk_path = with_index(&keys(&["storage", "disks"]), i);
        for (j, partition) in partitions.iter().enumerate() {
            let Some(partition) = partition.as_object() else {
                continue;
            };
            let number = partition.get("number").and_then(Value::as_i64).unwrap_or(0);
            let label = partition.get("label").filter(|l| !l.is_null());
            let part_path = with_index(&with_key(&disk_path, "partitions"), j);
            if spec.v1_6_checks
                && device != "/dev/disk/by-id/coreos-boot-disk"
                && wipe_table != Some(true)
                && number == 0
                && label.is_some()
            {
                reuse.push(err(
                    with_key(&part_path, "number"),
                    "partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true",
                ));
            }
            let effective_wipe = wipe_table.unwrap_or(mirrored.contains(&device.as_str()));
            let expected = match label.and_then(Value::as_str) {
                Some("BIOS-BOOT" | "PowerPC-PReP-boot") => 1,
                Some("EFI-SYSTEM") => 2,
                Some("boot") => 3,
                Some("root") => 4,
                _ => continue,
            };
            if !effective_wipe && number != expected {
                reserved.push(err(
                    with_key(&part_path, "label"),
                    "incorrect partition number; a new partition will be created using reserved label",
                ));
            }
        }
    }
    reuse.extend(reserved);
    reuse
}

// ---------------------------------------------------------------------------------------
// Spec table (Butane v0.23.0)
// ---------------------------------------------------------------------------------------

/// Butane's `base/v0_N` package a spec builds on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Base {
    V0_1,
    V0_2,
    V0_3,
    V0_4,
    V0_5,
    V0_6,
    V0_7,
}

/// Which `boot_device` schema an fcos spec has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BootLevel {
    /// fcos 1.3, 1.4: layout x86_64/aarch64/ppc64le, luks tpm2/tang/threshold, mirror.
    V1_3,
    /// fcos 1.5: + luks.discard.
    V1_5,
    /// fcos 1.6+: + s390x layouts, luks.device, luks.cex.
    V1_6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    LuksClevis,
    LuksCex,
    KernelArguments,
    Disks,
    Filesystems,
    Luks,
    Raid,
}

const FLATCAR_CLEVIS: &[Filter] = &[Filter::LuksClevis];
const FLATCAR_CEX: &[Filter] = &[Filter::LuksCex];
const EDGE: &[Filter] = &[
    Filter::KernelArguments,
    Filter::Disks,
    Filter::Filesystems,
    Filter::Luks,
    Filter::Raid,
];

#[derive(Clone, Copy, Debug)]
struct Spec {
    base: Base,
    /// The Ignition spec produced, (major, minor).
    ign: (u32, u32),
    boot: Option<BootLevel>,
    grub: bool,
    /// fcos 1.6+ `Config.Validate`: mount points under /etc or /var only; partitions
    /// reused by label (a warning).
    v1_6_checks: bool,
    filters: &'static [Filter],
}

impl Spec {
    fn of(variant: &Variant) -> Result<Spec, SugarError> {
        let (major, minor, _) = variant.version;
        let plain = |base, ign| Spec {
            base,
            ign,
            boot: None,
            grub: false,
            v1_6_checks: false,
            filters: &[],
        };
        let unknown = || {
            err(
                vec![DocPath::Key("version".into())],
                &format!(
                    "no {} spec version {}.{}.{} is known to the sugar translator",
                    variant.name, variant.version.0, variant.version.1, variant.version.2
                ),
            )
        };
        if !matches!(variant.name, "fcos" | "flatcar" | "r4e" | "fiot") {
            return Err(err(
                vec![DocPath::Key("variant".into())],
                &format!(
                    "variant {:?} has no sugar translator (variants: fcos, flatcar, r4e, fiot)",
                    variant.name
                ),
            ));
        }
        if major != 1 {
            return Err(unknown());
        }
        let spec = match variant.name {
            "fcos" => match minor {
                0 => plain(Base::V0_1, (3, 0)),
                1 => plain(Base::V0_2, (3, 1)),
                2 => plain(Base::V0_3, (3, 2)),
                3 => Spec {
                    boot: Some(BootLevel::V1_3),
                    ..plain(Base::V0_3, (3, 2))
                },
                4 => Spec {
                    boot: Some(BootLevel::V1_3),
                    ..plain(Base::V0_4, (3, 3))
                },
                5 => Spec {
                    boot: Some(BootLevel::V1_5),
                    grub: true,
                    ..plain(Base::V0_5, (3, 4))
                },
                6 => Spec {
                    boot: Some(BootLevel::V1_6),
                    grub: true,
                    v1_6_checks: true,
                    ..plain(Base::V0_6, (3, 5))
                },
                // 1.7.0-experimental and whatever follows it
                _ => Spec {
                    boot: Some(BootLevel::V1_6),
                    grub: true,
                    v1_6_checks: true,
                    ..plain(Base::V0_7, (3, 6))
                },
            },
            "flatcar" => match minor {
                0 => Spec {
                    filters: FLATCAR_CLEVIS,
                    ..plain(Base::V0_4, (3, 3))
                },
                1 => Spec {
                    filters: FLATCAR_CLEVIS,
                    ..plain(Base::V0_5, (3, 4))
                },
                _ => Spec {
                    filters: FLATCAR_CEX,
                    ..plain(Base::V0_7, (3, 6))
                },
            },
            "r4e" => match minor {
                0 => Spec {
                    filters: EDGE,
                    ..plain(Base::V0_4, (3, 3))
                },
                1 => Spec {
                    filters: EDGE,
                    ..plain(Base::V0_5, (3, 4))
                },
                _ => Spec {
                    filters: EDGE,
                    ..plain(Base::V0_7, (3, 6))
                },
            },
            "fiot" => match minor {
                0 => Spec {
                    filters: EDGE,
                    ..plain(Base::V0_5, (3, 4))
                },
                _ => Spec {
                    filters: EDGE,
                    ..plain(Base::V0_7, (3, 6))
                },
            },
            _ => return Err(unknown()),
        };
        Ok(spec)
    }
}

// ---------------------------------------------------------------------------------------
// Paths and errors
// ---------------------------------------------------------------------------------------

fn err(path: Vec<DocPath>, message: &str) -> SugarError {
    SugarError {
        path,
        message: message.to_owned(),
    }
}

fn keys(parts: &[&str]) -> Vec<DocPath> {
    parts
        .iter()
        .map(|k| DocPath::Key((*k).to_owned()))
        .collect()
}

fn with_key(path: &[DocPath], key: &str) -> Vec<DocPath> {
    let mut p = path.to_vec();
    p.push(DocPath::Key(key.to_owned()));
    p
}

fn with_index(path: &[DocPath], index: usize) -> Vec<DocPath> {
    let mut p = path.to_vec();
    p.push(DocPath::Index(index));
    p
}

fn fs_path(index: usize, field: &str) -> Vec<DocPath> {
    with_key(
        &with_index(&keys(&["storage", "filesystems"]), index),
        field,
    )
}

fn grub_path(index: usize, field: &str) -> Vec<DocPath> {
    with_key(&with_index(&keys(&["grub", "users"]), index), field)
}

// ---------------------------------------------------------------------------------------
// Reading the document, with YAML-decoding type errors (as Go's yaml.v3 into Butane's
// structs: a null is an absent value; strings accept any scalar; booleans accept the
// YAML 1.1 words y/yes/on/n/no/off)
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Reader {
    errors: Vec<SugarError>,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn last_key(path: &[DocPath]) -> String {
    match path.last() {
        Some(DocPath::Key(k)) => k.clone(),
        Some(DocPath::Index(i)) => format!("item {i}"),
        None => "document".into(),
    }
}

impl Reader {
    fn type_error(&mut self, path: &[DocPath], want: &str, found: &Value) {
        self.errors.push(err(
            path.to_vec(),
            &format!(
                "{} must be {want}, found {}",
                last_key(path),
                kind_of(found)
            ),
        ));
    }

    fn map<'a>(
        &mut self,
        v: Option<&'a Value>,
        path: &[DocPath],
    ) -> Option<&'a Map<String, Value>> {
        match v? {
            Value::Null => None,
            Value::Object(m) => Some(m),
            other => {
                self.type_error(path, "a mapping", other);
                None
            }
        }
    }

    fn list<'a>(&mut self, v: Option<&'a Value>, path: &[DocPath]) -> Option<&'a Vec<Value>> {
        match v? {
            Value::Null => None,
            Value::Array(a) => Some(a),
            other => {
                self.type_error(path, "a list", other);
                None
            }
        }
    }

    fn string(&mut self, v: Option<&Value>, path: &[DocPath]) -> Option<String> {
        match v? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.type_error(path, "a string", other);
                None
            }
        }
    }

    fn boolean(&mut self, v: Option<&Value>, path: &[DocPath]) -> Option<bool> {
        match v? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.as_str() {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True"
                | "TRUE" => Some(true),
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
                | "FALSE" => Some(false),
                _ => {
                    self.type_error(path, "a boolean", &Value::String(s.clone()));
                    None
                }
            },
            other => {
                self.type_error(path, "a boolean", other);
                None
            }
        }
    }

    fn integer(&mut self, v: Option<&Value>, path: &[DocPath]) -> Option<i64> {
        match v? {
            Value::Null => None,
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(i)
                } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                {
                    Some(f as i64)
                } else {
                    self.type_error(path, "an integer", &Value::Number(n.clone()));
                    None
                }
            }
            other => {
                self.type_error(path, "an integer", other);
                None
            }
        }
    }
}

/// Strings of a base-translated field: type errors there belong to the base
/// translation, so a value of another type reads as absent.
fn base_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Mount units (base translation, `with_mount_unit`)
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Filesystem {
    index: usize,
    device: String,
    format: Option<String>,
    path: Option<String>,
    mount_options: Vec<String>,
    with_mount_unit: bool,
}

fn read_filesystems(rd: &mut Reader, doc: &Value) -> Vec<Filesystem> {
    let Some(list) = doc
        .get("storage")
        .and_then(|s| s.get("filesystems"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, item) in list.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            continue;
        };
        let with_mount_unit = rd
            .boolean(
                obj.get("with_mount_unit"),
                &fs_path(index, "with_mount_unit"),
            )
            .unwrap_or(false);
        let mount_options = obj
            .get("mount_options")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|o| match o {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Filesystem {
            index,
            device: base_str(obj, "device").unwrap_or_default(),
            format: base_str(obj, "format"),
            path: base_str(obj, "path"),
            mount_options,
            with_mount_unit,
        });
    }
    out
}

/// Names of `storage.luks` volumes unlocked with Tang (their mounts need the network).
fn read_luks_tang_names(doc: &Value) -> Vec<String> {
    let Some(list) = doc
        .get("storage")
        .and_then(|s| s.get("luks"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter(|l| {
            l.get("clevis")
                .and_then(|c| c.get("tang"))
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
        })
        .map(|l| {
            l.as_object()
                .and_then(|o| base_str(o, "name"))
                .unwrap_or_default()
        })
        .collect()
}

fn allowed_mountpoint(path: &str) -> bool {
    // ^/(etc|var)(/|$)
    ["/etc", "/var"].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn validate_filesystem(fs: &Filesystem, base: Base, errors: &mut Vec<SugarError>) {
    if !fs.with_mount_unit {
        return;
    }
    const NO_PATH: &str = "path is required if with_mount_unit is true and format is not swap";
    const NO_FORMAT: &str = "format is required if with_mount_unit is true";
    let format_empty = fs.format.as_deref().is_none_or(str::is_empty);
    let path_empty = fs.path.as_deref().is_none_or(str::is_empty);
    if base >= Base::V0_4 {
        if format_empty {
            errors.push(err(fs_path(fs.index, "format"), NO_FORMAT));
        } else if fs.format.as_deref() != Some("swap") && path_empty {
            errors.push(err(fs_path(fs.index, "path"), NO_PATH));
        }
    } else {
        if path_empty {
            errors.push(err(fs_path(fs.index, "path"), NO_PATH));
        }
        if format_empty {
            errors.push(err(fs_path(fs.index, "format"), NO_FORMAT));
        }
    }
}

/// `systemd-escape --path`, as go-systemd's `unit.UnitNamePathEscape`: redundant,
/// leading and trailing slashes dropped, `/` → `-`, a leading `.` and every byte outside
/// `[:_.0-9A-Za-z]` → `\x` + lowercase hex (unpadded, as Go's `%x`), `-` for the root.
pub fn unit_name_path_escape(path: &str) -> String {
    let mut out = String::new();
    let mut in_slashes = false;
    let mut start = true;
    for &c in path.as_bytes() {
        if c == b'/' {
            in_slashes = true;
            continue;
        } else if in_slashes {
            in_slashes = false;
            if !start {
                out.push('-');
            }
        }
        let allowed = c.is_ascii_alphanumeric() || matches!(c, b':' | b'_' | b'.');
        if (start && c == b'.') || !allowed {
            out.push_str(&format!("\\x{c:x}"));
        } else {
            out.push(c as char);
        }
        start = false;
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

fn mount_units(filesystems: &[Filesystem], luks_tang: &[String], base: Base) -> Vec<Value> {
    let mut units = Vec::new();
    for fs in filesystems.iter().filter(|f| f.with_mount_unit) {
        let mut remote = false;
        if base >= Base::V0_3
            && (fs.device.starts_with("/dev/mapper/")
                || fs.device.starts_with("/dev/disk/by-id/dm-name-"))
        {
            remote = luks_tang.iter().any(|name| {
                fs.device == format!("/dev/mapper/{name}")
                    || fs.device == format!("/dev/disk/by-id/dm-name-{name}")
            });
        }
        let format = fs.format.clone().unwrap_or_default();
        let swap = base >= Base::V0_4 && format == "swap";
        let mut options = String::new();
        if !fs.mount_options.is_empty() || remote {
            options.push_str("\nOptions=");
            options.push_str(&fs.mount_options.join(","));
            if remote {
                if !fs.mount_options.is_empty() {
                    options.push(',');
                }
                options.push_str("_netdev");
            }
        }
        let escaped_device = unit_name_path_escape(&fs.device);
        let (name, contents) = if swap {
            (
                format!("{escaped_device}.swap"),
                format!(
                    "# Generated by Butane\n[Swap]\nWhat={}{options}\n\n[Install]\nRequiredBy=swap.target",
                    fs.device
                ),
            )
        } else {
            let path = fs.path.clone().unwrap_or_default();
            let target = if remote {
                "remote-fs.target"
            } else {
                "local-fs.target"
            };
            (
                format!("{}.mount", unit_name_path_escape(&path)),
                format!(
                    "# Generated by Butane\n[Unit]\nRequires=systemd-fsck@{escaped_device}.service\nAfter=systemd-fsck@{escaped_device}.service\n\n[Mount]\nWhere={path}\nWhat={}\nType={format}{options}\n\n[Install]\nRequiredBy={target}",
                    fs.device
                ),
            )
        };
        units.push(json!({ "contents": contents, "enabled": true, "name": name }));
    }
    units
}

fn strip_with_mount_unit(ign: &mut Value) {
    if let Some(list) = ign
        .get_mut("storage")
        .and_then(|s| s.get_mut("filesystems"))
        .and_then(Value::as_array_mut)
    {
        for fs in list {
            if let Some(obj) = fs.as_object_mut() {
                obj.remove("withMountUnit");
                obj.remove("with_mount_unit");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// boot_device (fcos 1.3+)
// ---------------------------------------------------------------------------------------

const RESERVED_TYPE_GUID: &str = "8DA63339-0007-60C0-C436-083AC8230908";
const BIOS_TYPE_GUID: &str = "21686148-6449-6E6F-744E-656564454649";
const PREP_TYPE_GUID: &str = "9E1A2D38-C612-4316-AA26-8B49521E5A8B";
const ESP_TYPE_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
// Butane's V1 layout template (coreos-assembler's create_disk.sh); never to change.
const RESERVED_V1_SIZE_MIB: i64 = 1;
const BIOS_V1_SIZE_MIB: i64 = 1;
const PREP_V1_SIZE_MIB: i64 = 4;
const ESP_V1_SIZE_MIB: i64 = 127;
const BOOT_V1_SIZE_MIB: i64 = 384;

#[derive(Debug, Default)]
struct BootDevice {
    layout: Option<String>,
    cex_enabled: Option<bool>,
    discard: Option<bool>,
    device: Option<String>,
    /// Already in Ignition form (`url`, `thumbprint`, `advertisement`).
    tang: Vec<Value>,
    threshold: Option<i64>,
    tpm2: Option<bool>,
    mirror_devices: Vec<String>,
}

fn read_boot_device(
    rd: &mut Reader,
    doc: &Value,
    level: BootLevel,
    base: Base,
) -> Option<BootDevice> {
    let bd_path = keys(&["boot_device"]);
    let bd = rd.map(doc.get("boot_device"), &bd_path)?;
    let mut out = BootDevice {
        layout: rd.string(bd.get("layout"), &with_key(&bd_path, "layout")),
        ..BootDevice::default()
    };
    let luks_path = with_key(&bd_path, "luks");
    if let Some(luks) = rd.map(bd.get("luks"), &luks_path) {
        if level >= BootLevel::V1_6 {
            let cex_path = with_key(&luks_path, "cex");
            if let Some(cex) = rd.map(luks.get("cex"), &cex_path) {
                out.cex_enabled = rd.boolean(cex.get("enabled"), &with_key(&cex_path, "enabled"));
            }
            out.device = rd.string(luks.get("device"), &with_key(&luks_path, "device"));
        }
        if level >= BootLevel::V1_5 {
            out.discard = rd.boolean(luks.get("discard"), &with_key(&luks_path, "discard"));
        }
        let tang_path = with_key(&luks_path, "tang");
        if let Some(list) = rd.list(luks.get("tang"), &tang_path) {
            for (i, item) in list.iter().enumerate() {
                let item_path = with_index(&tang_path, i);
                let Some(t) = rd.map(Some(item), &item_path) else {
                    // a null entry decodes to an empty Tang
                    if item.is_null() {
                        out.tang.push(Value::Object(Map::new()));
                    }
                    continue;
                };
                let mut tang = Map::new();
                if base >= Base::V0_5 {
                    if let Some(a) = rd.string(
                        t.get("advertisement"),
                        &with_key(&item_path, "advertisement"),
                    ) {
                        tang.insert("advertisement".into(), Value::String(a));
                    }
                }
                if let Some(tp) =
                    rd.string(t.get("thumbprint"), &with_key(&item_path, "thumbprint"))
                {
                    tang.insert("thumbprint".into(), Value::String(tp));
                }
                if let Some(url) = rd.string(t.get("url"), &with_key(&item_path, "url")) {
                    if !url.is_empty() {
                        tang.insert("url".into(), Value::String(url));
                    }
                }
                out.tang.push(Value::Object(tang));
            }
        }
        out.threshold = rd.integer(luks.get("threshold"), &with_key(&luks_path, "threshold"));
        out.tpm2 = rd.boolean(luks.get("tpm2"), &with_key(&luks_path, "tpm2"));
    }
    let mirror_path = with_key(&bd_path, "mirror");
    if let Some(mirror) = rd.map(bd.get("mirror"), &mirror_path) {
        let dev_path = with_key(&mirror_path, "devices");
        if let Some(list) = rd.list(mirror.get("devices"), &dev_path) {
            for (i, item) in list.iter().enumerate() {
                let d = rd
                    .string(Some(item), &with_index(&dev_path, i))
                    .unwrap_or_default();
                out.mirror_devices.push(d);
            }
        }
    }
    Some(out)
}

/// `(/dev/dasd[a-z]$)` and `(/dev/sd[a-z]$)`: the regexps are unanchored at the start.
fn ends_with_disk(device: &str, prefix: &str) -> bool {
    let b = device.as_bytes();
    b.len() > prefix.len()
        && b[b.len() - 1].is_ascii_lowercase()
        && device[..b.len() - 1].ends_with(prefix)
}

fn validate_boot_device(bd: &BootDevice, level: BootLevel, errors: &mut Vec<SugarError>) {
    let at = |parts: &[&str]| {
        let mut p = vec!["boot_device"];
        p.extend_from_slice(parts);
        keys(&p)
    };
    const UNKNOWN_LAYOUT: &str =
        "layout must be one of: aarch64, ppc64le, s390x-eckd, s390x-virt, s390x-zfcp, x86_64";
    const NO_DEVICE: &str = "device is required for layouts: s390x-eckd, s390x-zfcp";
    const BAD_DEVICE: &str =
        "device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on s390x-zfcp layout";
    if let Some(layout) = &bd.layout {
        let device = bd.device.as_deref().filter(|d| !d.is_empty());
        match (layout.as_str(), level) {
            ("aarch64" | "ppc64le" | "x86_64", _) => {}
            ("s390x-eckd", BootLevel::V1_6) => match device {
                None => errors.push(err(at(&["layout"]), NO_DEVICE)),
                Some(d) if !ends_with_disk(d, "/dev/dasd") => {
                    errors.push(err(at(&["layout"]), BAD_DEVICE))
                }
                Some(_) => {}
            },
            ("s390x-zfcp", BootLevel::V1_6) => match device {
                None => errors.push(err(at(&["layout"]), NO_DEVICE)),
                Some(d) if !ends_with_disk(d, "/dev/sd") => {
                    errors.push(err(at(&["layout"]), BAD_DEVICE))
                }
                Some(_) => {}
            },
            ("s390x-virt", BootLevel::V1_6) => {}
            _ => errors.push(err(at(&["layout"]), UNKNOWN_LAYOUT)),
        }
        if level >= BootLevel::V1_6 && layout.starts_with("s390x") && !bd.mirror_devices.is_empty()
        {
            errors.push(err(
                at(&["layout"]),
                "mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt",
            ));
        }
    }
    if bd.cex_enabled == Some(true) {
        const MISMATCH: &str = "when using cex the targeted architecture must match s390x";
        match &bd.layout {
            None => errors.push(err(at(&["luks", "cex"]), MISMATCH)),
            Some(l) if !l.starts_with("s390x") => errors.push(err(at(&["layout"]), MISMATCH)),
            Some(_) => {}
        }
        if !bd.tang.is_empty() || bd.tpm2 == Some(true) {
            errors.push(err(at(&["luks"]), "cannot use cex with clevis"));
        }
    }
    if bd.mirror_devices.len() == 1 {
        errors.push(err(
            at(&["mirror", "devices"]),
            "mirroring requires at least two devices",
        ));
    }
}

/// The storage Butane renders for `boot_device`, as an Ignition config to merge under
/// the translated one; `None` when neither LUKS nor mirroring is asked for.
fn render_boot_device(bd: &BootDevice) -> Option<Value> {
    let want_luks = bd.tpm2 == Some(true) || !bd.tang.is_empty() || bd.cex_enabled == Some(true);
    let want_mirror = !bd.mirror_devices.is_empty();
    if !want_luks && !want_mirror {
        return None;
    }
    let layout = bd.layout.as_deref();
    let (want_bios, want_efi, want_prep) = match layout {
        None | Some("x86_64") => (true, true, false),
        Some("aarch64") => (false, true, false),
        Some("ppc64le") => (false, false, true),
        // s390x layouts (validated before)
        _ => (false, false, false),
    };

    let mut disks = Vec::new();
    let mut filesystems = Vec::new();
    let mut raid = Vec::new();
    let mut luks = Vec::new();
    let part = |label: String, size: Option<i64>, guid: Option<&str>| {
        let mut p = Map::new();
        p.insert("label".into(), Value::String(label));
        if let Some(s) = size {
            p.insert("sizeMiB".into(), Value::from(s));
        }
        if let Some(g) = guid {
            p.insert("typeGuid".into(), Value::String(g.into()));
        }
        Value::Object(p)
    };
    if want_mirror {
        for (i, device) in bd.mirror_devices.iter().enumerate() {
            let n = i + 1;
            let mut partitions = Vec::new();
            if want_bios {
                partitions.push(part(
                    format!("bios-{n}"),
                    Some(BIOS_V1_SIZE_MIB),
                    Some(BIOS_TYPE_GUID),
                ));
            } else if want_prep {
                partitions.push(part(
                    format!("prep-{n}"),
                    Some(PREP_V1_SIZE_MIB),
                    Some(PREP_TYPE_GUID),
                ));
            } else {
                partitions.push(part(
                    format!("reserved-{n}"),
                    Some(RESERVED_V1_SIZE_MIB),
                    Some(RESERVED_TYPE_GUID),
                ));
            }
            if want_efi {
                partitions.push(part(
                    format!("esp-{n}"),
                    Some(ESP_V1_SIZE_MIB),
                    Some(ESP_TYPE_GUID),
                ));
            } else {
                partitions.push(part(
                    format!("reserved-{n}"),
                    Some(RESERVED_V1_SIZE_MIB),
                    Some(RESERVED_TYPE_GUID),
                ));
            }
            partitions.push(part(format!("boot-{n}"), Some(BOOT_V1_SIZE_MIB), None));
            partitions.push(part(format!("root-{n}"), None, None));
            disks.push(json!({ "device": device, "partitions": partitions, "wipeTable": true }));
            if want_efi {
                filesystems.push(json!({
                    "device": format!("/dev/disk/by-partlabel/esp-{n}"),
                    "format": "vfat",
                    "label": format!("esp-{n}"),
                    "wipeFilesystem": true,
                }));
            }
        }
        let members = |prefix: &str| -> Vec<Value> {
            (1..=disks.len())
                .map(|n| Value::String(format!("/dev/disk/by-partlabel/{prefix}-{n}")))
                .collect()
        };
        raid.push(json!({
            "devices": members("boot"),
            "level": "raid1",
            "name": "md-boot",
            // the superblock at the end, so BIOS GRUB need not understand RAID
            "options": ["--metadata=1.0"],
        }));
        raid.push(json!({ "devices": members("root"), "level": "raid1", "name": "md-root" }));
        filesystems.push(json!({
            "device": "/dev/md/md-boot",
            "format": "ext4",
            "label": "boot",
            "wipeFilesystem": true,
        }));
    }
    if want_luks {
        let device = match layout {
            Some("s390x-eckd") => format!("{}2", bd.device.as_deref().unwrap_or("")),
            Some("s390x-zfcp") => format!("{}4", bd.device.as_deref().unwrap_or("")),
            _ if want_mirror => "/dev/md/md-root".to_owned(),
            _ => "/dev/disk/by-partlabel/root".to_owned(),
        };
        let mut volume = Map::new();
        if bd.cex_enabled == Some(true) {
            volume.insert("cex".into(), json!({ "enabled": true }));
        } else {
            let mut clevis = Map::new();
            if !bd.tang.is_empty() {
                clevis.insert("tang".into(), Value::Array(bd.tang.clone()));
            }
            if let Some(t) = bd.threshold {
                clevis.insert("threshold".into(), Value::from(t));
            }
            if let Some(t) = bd.tpm2 {
                clevis.insert("tpm2".into(), Value::Bool(t));
            }
            volume.insert("clevis".into(), Value::Object(clevis));
        }
        volume.insert("device".into(), Value::String(device));
        if let Some(d) = bd.discard {
            volume.insert("discard".into(), Value::Bool(d));
        }
        volume.insert("label".into(), Value::String("luks-root".into()));
        volume.insert("name".into(), Value::String("root".into()));
        volume.insert("wipeVolume".into(), Value::Bool(true));
        luks.push(Value::Object(volume));
    }
    let root_device = if want_luks {
        "/dev/mapper/root"
    } else {
        "/dev/md/md-root"
    };
    filesystems.push(json!({
        "device": root_device,
        "format": "xfs",
        "label": "root",
        "wipeFilesystem": true,
    }));

    let mut storage = Map::new();
    if !disks.is_empty() {
        storage.insert("disks".into(), Value::Array(disks));
    }
    storage.insert("filesystems".into(), Value::Array(filesystems));
    if !luks.is_empty() {
        storage.insert("luks".into(), Value::Array(luks));
    }
    if !raid.is_empty() {
        storage.insert("raid".into(), Value::Array(raid));
    }
    Some(json!({ "storage": storage }))
}

// ---------------------------------------------------------------------------------------
// grub.users (fcos 1.5+)
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct GrubUser {
    name: String,
    password_hash: Option<String>,
}

fn read_grub(rd: &mut Reader, doc: &Value) -> Vec<GrubUser> {
    let grub_path = keys(&["grub"]);
    let Some(grub) = rd.map(doc.get("grub"), &grub_path) else {
        return Vec::new();
    };
    let users_path = with_key(&grub_path, "users");
    let Some(list) = rd.list(grub.get("users"), &users_path) else {
        return Vec::new();
    };
    let mut users = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let item_path = with_index(&users_path, i);
        let user = match rd.map(Some(item), &item_path) {
            Some(u) => GrubUser {
                name: rd
                    .string(u.get("name"), &with_key(&item_path, "name"))
                    .unwrap_or_default(),
                password_hash: rd.string(
                    u.get("password_hash"),
                    &with_key(&item_path, "password_hash"),
                ),
            },
            None => GrubUser {
                name: String::new(),
                password_hash: None,
            },
        };
        users.push(user);
    }
    users
}

/// The contents of `/boot/grub2/user.cfg`, as Butane writes it.
fn grub_config(users: &[GrubUser]) -> String {
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let commands: Vec<String> = users
        .iter()
        .map(|u| {
            format!(
                "password_pbkdf2 {} {}",
                u.name,
                u.password_hash.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!(
        "# Generated by Butane\n\nset superusers=\"{}\"\n{}\n",
        names.join(" "),
        commands.join("\n")
    )
}

fn render_grub(users: &[GrubUser]) -> Value {
    let (source, compression) = make_data_url(grub_config(users).as_bytes(), None, true);
    let mut resource = Map::new();
    if let Some(c) = compression {
        resource.insert("compression".into(), Value::String(c));
    }
    resource.insert("source".into(), Value::String(source));
    json!({
        "storage": {
            "files": [{ "path": "/boot/grub2/user.cfg", "append": [resource] }],
            "filesystems": [{ "device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot" }],
        }
    })
}

// ---------------------------------------------------------------------------------------
// Field filters (flatcar, r4e, fiot)
// ---------------------------------------------------------------------------------------

/// Whether Butane's filter sees a value as empty: nil pointers, empty lists, structs of
/// empty fields (an explicit `false`, `0` or `""` behind a pointer is not empty).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_empty),
        _ => false,
    }
}

fn apply_filters(filters: &[Filter], ign: &Value) -> Vec<SugarError> {
    let mut errors = Vec::new();
    let storage = ign.get("storage");
    // Butane walks the config in struct order: kernelArguments, then storage's
    // disks, filesystems, luks (and each volume's cex, clevis), raid.
    if filters.contains(&Filter::KernelArguments)
        && ign.get("kernelArguments").is_some_and(|k| !is_empty(k))
    {
        errors.push(err(
            keys(&["kernel_arguments"]),
            "kernel argument customization is not supported in this spec version",
        ));
    }
    let list_filter = |filter: Filter, key: &str, message: &str, errors: &mut Vec<SugarError>| {
        if filters.contains(&filter)
            && storage
                .and_then(|s| s.get(key))
                .is_some_and(|l| !is_empty(l))
        {
            errors.push(err(keys(&["storage", key]), message));
        }
    };
    list_filter(
        Filter::Disks,
        "disks",
        "disk customization is not supported in this spec version",
        &mut errors,
    );
    list_filter(
        Filter::Filesystems,
        "filesystems",
        "filesystem customization is not supported in this spec version",
        &mut errors,
    );
    if filters.contains(&Filter::Luks) {
        list_filter(
            Filter::Luks,
            "luks",
            "luks is not supported in this spec version",
            &mut errors,
        );
    } else if let Some(volumes) = storage
        .and_then(|s| s.get("luks"))
        .and_then(Value::as_array)
    {
        for (i, volume) in volumes.iter().enumerate() {
            for (filter, field, message) in [
                (
                    Filter::LuksCex,
                    "cex",
                    "cex is not currently supported on the target platform",
                ),
                (
                    Filter::LuksClevis,
                    "clevis",
                    "clevis is not supported in this spec version",
                ),
            ] {
                if filters.contains(&filter) && volume.get(field).is_some_and(|v| !is_empty(v)) {
                    errors.push(err(
                        with_key(&with_index(&keys(&["storage", "luks"]), i), field),
                        message,
                    ));
                }
            }
        }
    }
    list_filter(
        Filter::Raid,
        "raid",
        "raid is not supported in this spec version",
        &mut errors,
    );
    errors
}

// ---------------------------------------------------------------------------------------
// Ignition's config merge (config/merge), parent = Butane's rendered config, child = the
// translated config: keyed lists merge entry by entry at the parent's position, the
// child's other entries follow; pointers and values take the child's when it has one;
// structs merge field by field.
// ---------------------------------------------------------------------------------------

struct MergeMode {
    /// Ignition 3.0–3.2: `luks.clevis` and `clevis.custom` are pointers (replaced whole),
    /// `raid.level` a plain string (always the child's).
    ign_3_2_or_older: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Root,
    Storage,
    Systemd,
    Disk,
    Partition,
    Filesystem,
    Raid,
    Luks,
    Clevis,
    Tang,
    File,
    /// Directories and links (keyed by path like files).
    Node,
    Resource,
    Header,
    Unit,
    Dropin,
    Passwd,
    /// Users and groups (keyed by name).
    Account,
    IgnitionSection,
    IgnitionConfig,
    Security,
    Tls,
    KernelArguments,
    Other,
}

/// How a list field merges.
#[derive(Clone, Copy, Debug)]
enum ListRule {
    /// By `Key()`; items of this kind.
    Keyed(Kind),
    /// Plain values, keyed by themselves.
    Values,
    /// Ignition's `IgnoreDuplicates`: parent's then child's.
    Append,
}

fn list_rule(kind: Kind, field: &str) -> ListRule {
    match (kind, field) {
        (Kind::Storage, "disks") => ListRule::Keyed(Kind::Disk),
        (Kind::Storage, "filesystems") => ListRule::Keyed(Kind::Filesystem),
        (Kind::Storage, "luks") => ListRule::Keyed(Kind::Luks),
        (Kind::Storage, "raid") => ListRule::Keyed(Kind::Raid),
        (Kind::Storage, "files") => ListRule::Keyed(Kind::File),
        (Kind::Storage, "directories" | "links") => ListRule::Keyed(Kind::Node),
        (Kind::Disk, "partitions") => ListRule::Keyed(Kind::Partition),
        (Kind::Filesystem, "mountOptions" | "options") => ListRule::Append,
        (Kind::Raid, "options") => ListRule::Append,
        (Kind::Luks, "options") => ListRule::Append,
        (Kind::Clevis, "tang") => ListRule::Keyed(Kind::Tang),
        (Kind::File, "append") => ListRule::Append,
        (Kind::Resource, "httpHeaders") => ListRule::Keyed(Kind::Header),
        (Kind::Systemd, "units") => ListRule::Keyed(Kind::Unit),
        (Kind::Unit, "dropins") => ListRule::Keyed(Kind::Dropin),
        (Kind::Passwd, "users" | "groups") => ListRule::Keyed(Kind::Account),
        (Kind::IgnitionConfig, "merge") => ListRule::Keyed(Kind::Resource),
        (Kind::Tls, "certificateAuthorities") => ListRule::Keyed(Kind::Resource),
        _ => ListRule::Values,
    }
}

fn child_kind(kind: Kind, field: &str) -> Kind {
    match (kind, field) {
        (Kind::Root, "storage") => Kind::Storage,
        (Kind::Root, "systemd") => Kind::Systemd,
        (Kind::Root, "passwd") => Kind::Passwd,
        (Kind::Root, "ignition") => Kind::IgnitionSection,
        (Kind::Root, "kernelArguments") => Kind::KernelArguments,
        (Kind::IgnitionSection, "config") => Kind::IgnitionConfig,
        (Kind::IgnitionSection, "security") => Kind::Security,
        (Kind::Security, "tls") => Kind::Tls,
        (Kind::IgnitionConfig, "replace") => Kind::Resource,
        (Kind::Luks, "clevis") => Kind::Clevis,
        (Kind::Luks, "keyFile") | (Kind::File, "contents") => Kind::Resource,
        _ => Kind::Other,
    }
}

/// Ignition's `Key()` of a list entry of `kind`.
fn item_key(kind: Kind, item: &Value) -> String {
    let s = |field: &str| match item.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    match kind {
        Kind::Disk | Kind::Filesystem => s("device"),
        Kind::Raid | Kind::Luks | Kind::Unit | Kind::Dropin | Kind::Header | Kind::Account => {
            s("name")
        }
        Kind::Resource => s("source"),
        Kind::Tang => s("url"),
        Kind::File | Kind::Node => s("path"),
        Kind::Partition => {
            let number = item.get("number").and_then(Value::as_i64).unwrap_or(0);
            if number != 0 {
                format!("number:{number}")
            } else if let Some(label) = item.get("label").filter(|l| !l.is_null()) {
                format!(
                    "label:{}",
                    label
                        .as_str()
                        .map_or_else(|| label.to_string(), str::to_owned)
                )
            } else {
                String::new()
            }
        }
        _ => match item {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

/// Ignition's config merge, `child` over `parent` (also what `merge` uses to join several
/// files). `ign_3_2_or_older`: the result's spec treats LUKS clevis as replaced whole.
pub(crate) fn merge_ignition(parent: Value, child: Value, ign_3_2_or_older: bool) -> Value {
    let mut out = child;
    merge_into(&mut out, parent, &MergeMode { ign_3_2_or_older });
    out
}

/// Merges `parent` under `*ign` (the child).
fn merge_into(ign: &mut Value, parent: Value, mode: &MergeMode) {
    let child = std::mem::take(ign);
    *ign = match (parent, child) {
        (Value::Object(p), Value::Object(c)) => Value::Object(merge_struct(p, c, Kind::Root, mode)),
        (p, Value::Null) => p,
        (_, c) => c,
    };
}

fn merge_struct(
    parent: Map<String, Value>,
    mut child: Map<String, Value>,
    kind: Kind,
    mode: &MergeMode,
) -> Map<String, Value> {
    child.retain(|_, v| !v.is_null());
    // Files, directories and links share one key space (Ignition's "Node" handle), as
    // do the two lists of kernel arguments.
    let shared_lists: &[&'static str] = match kind {
        Kind::Storage => &["directories", "files", "links"],
        Kind::KernelArguments => &["shouldExist", "shouldNotExist"],
        _ => &[],
    };
    let node_owner: HashMap<String, &'static str> = if !shared_lists.is_empty() {
        let mut owner = HashMap::new();
        for &list in shared_lists {
            if let Some(items) = child.get(list).and_then(Value::as_array) {
                for item in items {
                    let key = if kind == Kind::Storage {
                        item_key(Kind::File, item)
                    } else {
                        item_key(Kind::Other, item)
                    };
                    owner.insert(key, list);
                }
            }
        }
        owner
    } else {
        HashMap::new()
    };
    let mut result = Map::new();
    for (field, pv) in parent {
        let node_list = shared_lists.contains(&field.as_str());
        let mut cv = child.remove(&field);
        if node_list && cv.is_none() && pv.is_array() {
            // the child may hold the same paths under another node type
            cv = Some(Value::Array(Vec::new()));
        }
        let merged = match (pv, cv) {
            (Value::Array(p), Some(Value::Array(c))) => {
                let shared = node_list.then_some(&node_owner);
                let list = merge_list(p, c, list_rule(kind, &field), &field, shared, mode);
                // Go leaves an empty list out of the JSON (omitempty)
                (!list.is_empty()).then_some(Value::Array(list))
            }
            (Value::Object(p), Some(Value::Object(c))) => {
                let pointer = mode.ign_3_2_or_older
                    && matches!(
                        (kind, field.as_str()),
                        (Kind::Luks, "clevis") | (Kind::Clevis, "custom")
                    );
                if pointer {
                    Some(Value::Object(c))
                } else {
                    Some(Value::Object(merge_struct(
                        p,
                        c,
                        child_kind(kind, &field),
                        mode,
                    )))
                }
            }
            (_, Some(c)) => Some(c),
            // A plain (non-pointer) value is always the child's, even its zero value.
            (_, None) if mode.ign_3_2_or_older && kind == Kind::Raid && field == "level" => None,
            (p, None) => Some(p),
        };
        if let Some(v) = merged {
            result.insert(field, v);
        }
    }
    for (field, cv) in child {
        result.insert(field, cv);
    }
    result
}

fn merge_list(
    parent: Vec<Value>,
    child: Vec<Value>,
    rule: ListRule,
    field: &str,
    node_owner: Option<&HashMap<String, &'static str>>,
    mode: &MergeMode,
) -> Vec<Value> {
    let item_kind = match rule {
        ListRule::Append => {
            let mut out = parent;
            out.extend(child);
            return out;
        }
        ListRule::Keyed(k) => k,
        ListRule::Values => Kind::Other,
    };
    let key = |v: &Value| match rule {
        ListRule::Keyed(k) => item_key(k, v),
        _ => item_key(Kind::Other, v),
    };
    // The child's entry for each key (the last one, as Ignition's map keeps).
    let mut child_index: HashMap<String, usize> = HashMap::new();
    for (i, c) in child.iter().enumerate() {
        child_index.insert(key(c), i);
    }
    let parent_keys: HashSet<String> = parent.iter().map(key).collect();
    let mut out = Vec::with_capacity(parent.len() + child.len());
    for p in parent {
        let k = key(&p);
        if let Some(owner) = node_owner.and_then(|o| o.get(&k)) {
            if *owner != field {
                // in the child under another node type: the child's entry wins there
                continue;
            }
        }
        match child_index.get(&k) {
            Some(&ci) => {
                let c = child[ci].clone();
                if item_kind == Kind::Header && c.get("value").is_none_or(Value::is_null) {
                    // a header without value removes the parent's
                    continue;
                }
                out.push(match (p, c) {
                    (Value::Object(p), Value::Object(c)) => {
                        Value::Object(merge_struct(p, c, item_kind, mode))
                    }
                    (_, c) => c,
                });
            }
            None => out.push(p),
        }
    }
    for c in child {
        if !parent_keys.contains(&key(&c)) {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// data: URLs, as Butane's MakeDataURL
// ---------------------------------------------------------------------------------------

/// Butane's `MakeDataURL`: the shortest of a percent-encoded, a base64 and (unless the
/// user compressed the contents, or `allow_compression` is off) a gzipped base64 `data:`
/// URL, and the `compression` to record: `Some("")` or `Some("gzip")` when the config did
/// not name one, `None` when it did (keep the user's).
pub fn make_data_url(
    contents: &[u8],
    current_compression: Option<&str>,
    allow_compression: bool,
) -> (String, Option<String>) {
    let user_compressed = current_compression.is_some_and(|c| !c.is_empty());
    let mut compression = if user_compressed {
        None
    } else {
        Some(String::new())
    };
    let mut opaque = format!(",{}", percent_escape(contents));
    let b64 = format!(";base64,{}", base64_encode(contents));
    if b64.len() < opaque.len() {
        opaque = b64;
    }
    if !user_compressed && allow_compression {
        let gz = format!(";base64,{}", base64_encode(&gzip_best(contents)));
        if gz.len() + "gzip".len() < opaque.len() {
            opaque = gz;
            compression = Some("gzip".into());
        }
    }
    (format!("data:{opaque}"), compression)
}

/// `dataurl.Escape` (RFC 2396): unreserved bytes `[A-Za-z0-9-_.!~*'()]` kept, others `%XX`.
fn percent_escape(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for &b in data {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Gzip at the strongest level libdeflate has. Butane's bytes come from Go's encoder;
/// the content is the same, and the choice of encoding only ever moves by a few bytes.
pub fn gzip_best(data: &[u8]) -> Vec<u8> {
    let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::best());
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    // The buffer is sized by the compressor's own bound.
    let n = compressor.gzip_compress(data, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Butane v0.23.0's output for `examples_NN.bu`.
    fn butane_output(case: &str) -> Value {
        let path = format!(
            "{}/tests/data/butane-examples/cases/examples_{case}.ign",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn camel(key: &str) -> String {
        let mut out = String::new();
        for (i, part) in key.split('_').enumerate() {
            match (i, part) {
                (0, _) => out.push_str(part),
                (_, "mib") => out.push_str("MiB"),
                _ => {
                    let mut c = part.chars();
                    if let Some(f) = c.next() {
                        out.extend(f.to_uppercase());
                        out.push_str(c.as_str());
                    }
                }
            }
        }
        out
    }

    /// What the base translation hands to `desugar`: the document without its variant
    /// sections, keys renamed 1:1, `inline` resources as `data:` URLs.
    fn base_translation(doc: &Value, ign_version: &str) -> Value {
        fn walk(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    let mut out = Map::new();
                    for (k, v) in m {
                        match k.as_str() {
                            "with_mount_unit" => {}
                            "inline" => {
                                let (source, compression) =
                                    make_data_url(v.as_str().unwrap().as_bytes(), None, true);
                                out.insert("source".into(), Value::String(source));
                                if let Some(c) = compression {
                                    out.insert("compression".into(), Value::String(c));
                                }
                            }
                            _ => {
                                out.insert(camel(k), walk(v));
                            }
                        }
                    }
                    Value::Object(out)
                }
                Value::Array(a) => Value::Array(a.iter().map(walk).collect()),
                other => other.clone(),
            }
        }
        let mut out = Map::new();
        out.insert("ignition".into(), json!({ "version": ign_version }));
        for (k, v) in doc.as_object().unwrap() {
            if !matches!(k.as_str(), "variant" | "version" | "boot_device" | "grub") {
                out.insert(camel(k), walk(v));
            }
        }
        Value::Object(out)
    }

    fn run(variant: &str, version: (u32, u32, u32), doc: &Value) -> Result<Value, Vec<SugarError>> {
        let ign_version = match (variant, version.1) {
            ("fcos", 0) => "3.0.0",
            ("fcos", 1) => "3.1.0",
            ("fcos", 2 | 3) => "3.2.0",
            ("fcos", 4) | ("flatcar" | "r4e", 0) => "3.3.0",
            ("fcos", 5) | ("flatcar" | "r4e", 1) | ("fiot", 0) => "3.4.0",
            ("fcos", 6) => "3.5.0",
            _ => "3.6.0",
        };
        let mut ign = base_translation(doc, ign_version);
        desugar(
            &Variant {
                name: variant,
                version,
            },
            doc,
            &mut ign,
        )
        .map(|()| ign)
    }

    fn fcos(minor: u32, doc: Value) -> Value {
        match run("fcos", (1, minor, 0), &doc) {
            Ok(v) => v,
            Err(e) => panic!(
                "unexpected errors: {}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    fn errors_of(variant: &str, version: (u32, u32, u32), doc: Value) -> Vec<String> {
        match run(variant, version, &doc) {
            Ok(v) => panic!("expected errors, got {v}"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The `data:` URL payload, decoded.
    fn decode_data_url(url: &str) -> Vec<u8> {
        let payload = url
            .strip_prefix("data:,")
            .expect("percent-encoded data URL");
        let b = payload.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
                );
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    // ----- Butane's examples (docs), whole outputs compared -----

    #[test]
    fn example_08_btrfs_var_mount_unit() {
        let out = fcos(
            1,
            json!({
                "variant": "fcos", "version": "1.1.0",
                "storage": {
                    "disks": [{"device": "/dev/sdb", "wipe_table": true,
                               "partitions": [{"number": 1, "label": "var"}]}],
                    "filesystems": [{"path": "/var", "device": "/dev/disk/by-partlabel/var",
                                     "format": "btrfs", "wipe_filesystem": true, "label": "var",
                                     "with_mount_unit": true}]
                }
            }),
        );
        assert_eq!(out, butane_output("08"));
    }

    #[test]
    fn example_09_swap_unit() {
        let out = fcos(
            4,
            json!({
                "variant": "fcos", "version": "1.4.0",
                "storage": {
                    "disks": [{"device": "/dev/sdb", "wipe_table": true,
                               "partitions": [{"number": 1, "label": "swap"}]}],
                    "filesystems": [{"device": "/dev/disk/by-partlabel/swap", "format": "swap",
                                     "wipe_filesystem": true, "with_mount_unit": true}]
                }
            }),
        );
        assert_eq!(out, butane_output("09"));
    }

    #[test]
    fn example_10_luks_mounts_tang_is_remote() {
        let out = fcos(
            2,
            json!({
                "variant": "fcos", "version": "1.2.0",
                "storage": {
                    "luks": [
                        {"name": "static-key-example", "device": "/dev/sdb",
                         "key_file": {"inline": "REPLACE-THIS-WITH-YOUR-KEY-MATERIAL"}},
                        {"name": "tpm-example", "device": "/dev/sdc", "clevis": {"tpm2": true}},
                        {"name": "tang-example", "device": "/dev/sdd",
                         "clevis": {"tang": [{"url": "https://tang.example.com",
                                              "thumbprint": "REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT"}]}}
                    ],
                    "filesystems": [
                        {"path": "/var/lib/static_key_example", "device": "/dev/disk/by-id/dm-name-static-key-example",
                         "format": "ext4", "label": "STATIC-EXAMPLE", "with_mount_unit": true},
                        {"path": "/var/lib/tpm_example", "device": "/dev/disk/by-id/dm-name-tpm-example",
                         "format": "ext4", "label": "TPM-EXAMPLE", "with_mount_unit": true},
                        {"path": "/var/lib/tang_example", "device": "/dev/disk/by-id/dm-name-tang-example",
                         "format": "ext4", "label": "TANG-EXAMPLE", "with_mount_unit": true}
                    ]
                }
            }),
        );
        assert_eq!(out, butane_output("10"));
    }

    #[test]
    fn example_11_boot_device_tpm2_and_tang() {
        let out = fcos(
            3,
            json!({
                "variant": "fcos", "version": "1.3.0",
                "boot_device": {"luks": {"tpm2": true, "tang": [
                    {"url": "https://tang.example.com", "thumbprint": "REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT"}]}}
            }),
        );
        assert_eq!(out, butane_output("11"));
    }

    #[test]
    fn example_12_root_filesystem_override() {
        let out = fcos(
            3,
            json!({
                "variant": "fcos", "version": "1.3.0",
                "boot_device": {"luks": {"tpm2": true}},
                "storage": {"filesystems": [{"device": "/dev/mapper/root", "format": "ext4"}]}
            }),
        );
        assert_eq!(out, butane_output("12"));
    }

    #[test]
    fn example_13_s390x_eckd() {
        let out = fcos(
            6,
            json!({
                "variant": "fcos", "version": "1.6.0",
                "boot_device": {"layout": "s390x-eckd", "luks": {"device": "/dev/dasda", "tang": [
                    {"url": "https://tang.example.com", "thumbprint": "REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT"}]}}
            }),
        );
        assert_eq!(out, butane_output("13"));
    }

    #[test]
    fn example_14_s390x_zfcp() {
        let out = fcos(
            6,
            json!({
                "variant": "fcos", "version": "1.6.0",
                "boot_device": {"layout": "s390x-zfcp", "luks": {"device": "/dev/sdb", "tang": [
                    {"url": "https://tang.example.com", "thumbprint": "REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT"}]}}
            }),
        );
        assert_eq!(out, butane_output("14"));
    }

    #[test]
    fn example_15_s390x_virt() {
        let out = fcos(
            6,
            json!({
                "variant": "fcos", "version": "1.6.0",
                "boot_device": {"layout": "s390x-virt", "luks": {"tang": [
                    {"url": "https://tang.example.com", "thumbprint": "REPLACE-THIS-WITH-YOUR-TANG-THUMBPRINT"}]}}
            }),
        );
        assert_eq!(out, butane_output("15"));
    }

    #[test]
    fn example_16_s390x_cex() {
        let out = fcos(
            6,
            json!({
                "variant": "fcos", "version": "1.6.0",
                "boot_device": {"layout": "s390x-eckd", "luks": {"device": "/dev/dasda", "cex": {"enabled": true}}}
            }),
        );
        assert_eq!(out, butane_output("16"));
    }

    #[test]
    fn example_17_mirror() {
        let out = fcos(
            3,
            json!({
                "variant": "fcos", "version": "1.3.0",
                "boot_device": {"layout": "x86_64", "mirror": {"devices": ["/dev/sda", "/dev/sdb"]}}
            }),
        );
        assert_eq!(out, butane_output("17"));
    }

    #[test]
    fn example_18_mirror_luks_and_user_partitions() {
        let out = fcos(
            3,
            json!({
                "variant": "fcos", "version": "1.3.0",
                "boot_device": {"layout": "x86_64", "luks": {"tpm2": true},
                                "mirror": {"devices": ["/dev/sda", "/dev/sdb"]}},
                "storage": {
                    "disks": [
                        {"device": "/dev/sda", "partitions": [{"label": "root-1", "size_mib": 10240}, {"label": "var-1"}]},
                        {"device": "/dev/sdb", "partitions": [{"label": "root-2", "size_mib": 10240}, {"label": "var-2"}]}
                    ],
                    "raid": [{"name": "md-var", "level": "raid1",
                              "devices": ["/dev/disk/by-partlabel/var-1", "/dev/disk/by-partlabel/var-2"]}],
                    "filesystems": [{"device": "/dev/md/md-var", "path": "/var", "format": "xfs",
                                     "wipe_filesystem": true, "with_mount_unit": true}]
                }
            }),
        );
        assert_eq!(out, butane_output("18"));
    }

    #[test]
    fn example_23_grub_user() {
        let out = fcos(
            5,
            json!({
                "variant": "fcos", "version": "1.5.0",
                "grub": {"users": [{"name": "root", "password_hash": "grub.pbkdf2.sha512.10000.874A958E5264..."}]}
            }),
        );
        let expected = butane_output("23");
        assert_eq!(out, expected);
        let source = out["storage"]["files"][0]["append"][0]["source"]
            .as_str()
            .unwrap();
        assert_eq!(
            String::from_utf8(decode_data_url(source)).unwrap(),
            "# Generated by Butane\n\nset superusers=\"root\"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.874A958E5264...\n"
        );
    }

    // ----- Butane's own unit tests (base/v0_6, config/fcos/v1_6 translate_test.go) -----

    fn mount_unit(name: &str, contents: &str, enabled: bool) -> Value {
        json!({"contents": contents, "enabled": enabled, "name": name})
    }

    #[test]
    fn mount_unit_options_and_overridden_enabled_flag() {
        let out = fcos(
            6,
            json!({
                "storage": {"filesystems": [{"device": "/dev/disk/by-label/foo", "format": "ext4",
                    "mount_options": ["ro", "noatime"], "path": "/var/lib/containers", "with_mount_unit": true}]},
                "systemd": {"units": [{"name": "var-lib-containers.mount", "enabled": false}]}
            }),
        );
        assert_eq!(
            out["systemd"]["units"],
            json!([mount_unit(
                "var-lib-containers.mount",
                "# Generated by Butane\n[Unit]\nRequires=systemd-fsck@dev-disk-by\\x2dlabel-foo.service\nAfter=systemd-fsck@dev-disk-by\\x2dlabel-foo.service\n\n[Mount]\nWhere=/var/lib/containers\nWhat=/dev/disk/by-label/foo\nType=ext4\nOptions=ro,noatime\n\n[Install]\nRequiredBy=local-fs.target",
                false
            )])
        );
        assert_eq!(
            out["storage"]["filesystems"],
            json!([{"device": "/dev/disk/by-label/foo", "format": "ext4",
                    "mountOptions": ["ro", "noatime"], "path": "/var/lib/containers"}])
        );
    }

    #[test]
    fn mount_unit_remote_with_and_without_options() {
        for (options, line) in [
            (json!(["ro", "noatime"]), "Options=ro,noatime,_netdev"),
            (json!(null), "Options=_netdev"),
        ] {
            let mut fs = json!({"device": "/dev/mapper/foo-bar", "format": "ext4",
                                "path": "/var/lib/containers", "with_mount_unit": true});
            if !options.is_null() {
                fs["mount_options"] = options;
            }
            let out = fcos(
                6,
                json!({"storage": {"filesystems": [fs], "luks": [{"name": "foo-bar", "device": "/dev/bar",
                    "clevis": {"tang": [{"url": "http://example.com"}]}}]}}),
            );
            assert_eq!(
                out["systemd"]["units"],
                json!([mount_unit(
                    "var-lib-containers.mount",
                    &format!("# Generated by Butane\n[Unit]\nRequires=systemd-fsck@dev-mapper-foo\\x2dbar.service\nAfter=systemd-fsck@dev-mapper-foo\\x2dbar.service\n\n[Mount]\nWhere=/var/lib/containers\nWhat=/dev/mapper/foo-bar\nType=ext4\n{line}\n\n[Install]\nRequiredBy=remote-fs.target"),
                    true
                )])
            );
        }
    }

    #[test]
    fn mount_unit_overridden_contents() {
        let out = fcos(
            6,
            json!({
                "storage": {"filesystems": [{"device": "/dev/disk/by-label/foo", "format": "ext4",
                    "path": "/var/lib/containers", "with_mount_unit": true}]},
                "systemd": {"units": [{"name": "var-lib-containers.mount", "contents": "[Service]\nExecStart=/bin/false\n"}]}
            }),
        );
        assert_eq!(
            out["systemd"]["units"],
            json!([mount_unit(
                "var-lib-containers.mount",
                "[Service]\nExecStart=/bin/false\n",
                true
            )])
        );
    }

    #[test]
    fn swap_unit_with_options() {
        let out = fcos(
            6,
            json!({"storage": {"filesystems": [{"device": "/dev/disk/by-label/foo", "format": "swap",
                "mount_options": ["pri=1", "discard=pages"], "with_mount_unit": true}]}}),
        );
        assert_eq!(
            out["systemd"]["units"],
            json!([mount_unit(
                "dev-disk-by\\x2dlabel-foo.swap",
                "# Generated by Butane\n[Swap]\nWhat=/dev/disk/by-label/foo\nOptions=pri=1,discard=pages\n\n[Install]\nRequiredBy=swap.target",
                true
            )])
        );
    }

    #[test]
    fn generated_units_come_before_the_users_units() {
        let out = fcos(
            6,
            json!({
                "storage": {"filesystems": [
                    {"device": "/dev/vdb", "format": "xfs", "path": "/var/b", "with_mount_unit": true},
                    {"device": "/dev/vdc", "format": "xfs", "path": "/var/c", "with_mount_unit": false},
                    {"device": "/dev/vdd", "format": "xfs", "path": "/var/d", "with_mount_unit": true}]},
                "systemd": {"units": [{"name": "a.service", "enabled": true},
                                      {"name": "var-d.mount", "dropins": [{"name": "x.conf", "contents": "[Mount]\n"}]}]}
            }),
        );
        let names: Vec<&str> = out["systemd"]["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["var-b.mount", "var-d.mount", "a.service"]);
        let d = &out["systemd"]["units"][1];
        assert_eq!(d["enabled"], json!(true));
        assert_eq!(
            d["dropins"],
            json!([{"name": "x.conf", "contents": "[Mount]\n"}])
        );
        assert!(d["contents"]
            .as_str()
            .unwrap()
            .contains("Where=/var/d\nWhat=/dev/vdd\nType=xfs"));
    }

    #[test]
    fn older_templates() {
        // fcos 1.1 (base v0_2): no remote detection; fcos 1.3 (base v0_3): swap is a
        // plain mount unit and needs a path.
        let out = fcos(
            3,
            json!({"storage": {"filesystems": [{"device": "/dev/vdb", "format": "swap", "path": "/var/swap",
                                                "with_mount_unit": true}]}}),
        );
        assert_eq!(out["systemd"]["units"][0]["name"], "var-swap.mount");
        assert!(out["systemd"]["units"][0]["contents"]
            .as_str()
            .unwrap()
            .contains("Type=swap\n\n[Install]\nRequiredBy=local-fs.target"));
        assert_eq!(
            errors_of("fcos", (1, 3, 0), json!({"storage": {"filesystems": [{"device": "/dev/vdb", "format": "swap", "with_mount_unit": true}]}})),
            ["$.storage.filesystems.0.path: path is required if with_mount_unit is true and format is not swap"]
        );
        // fcos 1.0 has no with_mount_unit: the key is unused (a warning in Butane).
        let out = fcos(
            0,
            json!({"storage": {"filesystems": [{"device": "/dev/vdb", "format": "xfs", "with_mount_unit": true}]}}),
        );
        assert!(out.get("systemd").is_none());
    }

    fn tang() -> Value {
        json!([{"url": "https://example.com/", "thumbprint": "z"}])
    }

    fn luks_root(device: &str) -> Value {
        json!({"clevis": {"tang": tang(), "threshold": 2, "tpm2": true}, "device": device, "discard": true,
               "label": "luks-root", "name": "root", "wipeVolume": true})
    }

    #[test]
    fn boot_device_luks_x86_64() {
        let out = fcos(
            6,
            json!({"boot_device": {"luks": {"discard": true, "tang": tang(), "threshold": 2, "tpm2": true}}}),
        );
        assert_eq!(
            out,
            json!({"ignition": {"version": "3.5.0"}, "storage": {
                "luks": [luks_root("/dev/disk/by-partlabel/root")],
                "filesystems": [{"device": "/dev/mapper/root", "format": "xfs", "label": "root", "wipeFilesystem": true}]}})
        );
        // discard does not exist before fcos 1.5: the key is ignored
        let out = fcos(
            4,
            json!({"boot_device": {"luks": {"discard": true, "tpm2": true}}}),
        );
        assert!(out["storage"]["luks"][0].get("discard").is_none());
    }

    #[test]
    fn boot_device_tang_advertisement() {
        let adv = "{\"payload\": \"xyzzy\"}";
        let out = fcos(
            6,
            json!({"boot_device": {"luks": {"tang": [{"url": "https://example.com/", "thumbprint": "z", "advertisement": adv}]}}}),
        );
        assert_eq!(
            out["storage"]["luks"],
            json!([{"clevis": {"tang": [{"advertisement": adv, "thumbprint": "z", "url": "https://example.com/"}]},
                    "device": "/dev/disk/by-partlabel/root", "label": "luks-root", "name": "root", "wipeVolume": true}])
        );
    }

    fn mirror_disk(
        device: &str,
        n: u32,
        first: (&str, i64, &str),
        second: (&str, i64, &str),
        root_size: Option<i64>,
    ) -> Value {
        let mut root = json!({"label": format!("root-{n}")});
        if let Some(s) = root_size {
            root["sizeMiB"] = json!(s);
        }
        json!({"device": device, "partitions": [
            {"label": format!("{}-{n}", first.0), "sizeMiB": first.1, "typeGuid": first.2},
            {"label": format!("{}-{n}", second.0), "sizeMiB": second.1, "typeGuid": second.2},
            {"label": format!("boot-{n}"), "sizeMiB": 384},
            root], "wipeTable": true})
    }

    fn raids(n: u32) -> Value {
        let devs = |p: &str| {
            (1..=n)
                .map(|i| format!("/dev/disk/by-partlabel/{p}-{i}"))
                .collect::<Vec<_>>()
        };
        json!([{"devices": devs("boot"), "level": "raid1", "name": "md-boot", "options": ["--metadata=1.0"]},
               {"devices": devs("root"), "level": "raid1", "name": "md-root"}])
    }

    const RESERVED: (&str, i64, &str) = ("reserved", 1, RESERVED_TYPE_GUID);
    const BIOS: (&str, i64, &str) = ("bios", 1, BIOS_TYPE_GUID);
    const ESP: (&str, i64, &str) = ("esp", 127, ESP_TYPE_GUID);
    const PREP: (&str, i64, &str) = ("prep", 4, PREP_TYPE_GUID);

    fn esp_fs(n: u32) -> Value {
        json!({"device": format!("/dev/disk/by-partlabel/esp-{n}"), "format": "vfat", "label": format!("esp-{n}"), "wipeFilesystem": true})
    }

    fn fs(device: &str, format: &str, label: &str) -> Value {
        json!({"device": device, "format": format, "label": label, "wipeFilesystem": true})
    }

    #[test]
    fn boot_device_three_disk_mirror() {
        let out = fcos(
            6,
            json!({"boot_device": {"mirror": {"devices": ["/dev/vda", "/dev/vdb", "/dev/vdc"]}}}),
        );
        assert_eq!(
            out["storage"],
            json!({
                "disks": [mirror_disk("/dev/vda", 1, BIOS, ESP, None), mirror_disk("/dev/vdb", 2, BIOS, ESP, None),
                          mirror_disk("/dev/vdc", 3, BIOS, ESP, None)],
                "raid": raids(3),
                "filesystems": [esp_fs(1), esp_fs(2), esp_fs(3), fs("/dev/md/md-boot", "ext4", "boot"),
                                fs("/dev/md/md-root", "xfs", "root")]
            })
        );
    }

    #[test]
    fn boot_device_mirror_and_luks_aarch64_ppc64le() {
        let luks = json!({"discard": true, "tang": tang(), "threshold": 2, "tpm2": true});
        let out = fcos(
            6,
            json!({"boot_device": {"layout": "aarch64", "luks": luks,
                                                 "mirror": {"devices": ["/dev/vda", "/dev/vdb"]}}}),
        );
        assert_eq!(
            out["storage"],
            json!({
                "disks": [mirror_disk("/dev/vda", 1, RESERVED, ESP, None), mirror_disk("/dev/vdb", 2, RESERVED, ESP, None)],
                "raid": raids(2),
                "luks": [luks_root("/dev/md/md-root")],
                "filesystems": [esp_fs(1), esp_fs(2), fs("/dev/md/md-boot", "ext4", "boot"), fs("/dev/mapper/root", "xfs", "root")]
            })
        );
        let out = fcos(
            6,
            json!({"boot_device": {"layout": "ppc64le", "luks": luks,
                                                 "mirror": {"devices": ["/dev/vda", "/dev/vdb"]}}}),
        );
        assert_eq!(
            out["storage"],
            json!({
                "disks": [mirror_disk("/dev/vda", 1, PREP, RESERVED, None), mirror_disk("/dev/vdb", 2, PREP, RESERVED, None)],
                "raid": raids(2),
                "luks": [luks_root("/dev/md/md-root")],
                "filesystems": [fs("/dev/md/md-boot", "ext4", "boot"), fs("/dev/mapper/root", "xfs", "root")]
            })
        );
    }

    #[test]
    fn boot_device_mirror_with_overridden_root() {
        let out = fcos(
            6,
            json!({
                "storage": {
                    "disks": [{"device": "/dev/vda", "partitions": [{"label": "root-1", "size_mib": 8192}]},
                              {"device": "/dev/vdb", "partitions": [{"label": "root-2", "size_mib": 8192}]}],
                    "filesystems": [{"device": "/dev/mapper/root", "format": "ext4"}]
                },
                "boot_device": {"luks": {"discard": true, "tang": tang(), "threshold": 2, "tpm2": true},
                                "mirror": {"devices": ["/dev/vda", "/dev/vdb"]}}
            }),
        );
        assert_eq!(
            out["storage"],
            json!({
                "disks": [mirror_disk("/dev/vda", 1, BIOS, ESP, Some(8192)), mirror_disk("/dev/vdb", 2, BIOS, ESP, Some(8192))],
                "raid": raids(2),
                "luks": [luks_root("/dev/md/md-root")],
                "filesystems": [esp_fs(1), esp_fs(2), fs("/dev/md/md-boot", "ext4", "boot"), fs("/dev/mapper/root", "ext4", "root")]
            })
        );
    }

    #[test]
    fn grub_two_users_gzip_as_butane() {
        let out = fcos(
            6,
            json!({"grub": {"users": [
                {"name": "root1", "password_hash": "grub.pbkdf2.sha512.10000.874A958E526409..."},
                {"name": "root2", "password_hash": "grub.pbkdf2.sha512.10000.874B829D126209..."}]}}),
        );
        let butane = "data:;base64,H4sIAAAAAAAC/3zMsQrCMBDG8b1PcdT9SI62JoODRfExJCGngtCEuwTx7UWyiss3fH/47eDCG0uonCC+YW01bDwMyhW0FZamLHoYJedq4bs0DiWovrKka4nPdCPo8S4tYn9QH2G2hNYYY9Dtp6Of3XmmZTIeEX8C9BdYHfmTpYU68AkAAP//Mp8bt7YAAAA=";
        let append = &out["storage"]["files"][0]["append"][0];
        assert_eq!(append["compression"], "gzip");
        assert_eq!(
            gzipped_payload(append["source"].as_str().unwrap()),
            gzipped_payload(butane)
        );
        assert_eq!(
            out["storage"]["filesystems"],
            json!([{"device": "/dev/disk/by-label/boot", "format": "ext4", "path": "/boot"}])
        );
        assert_eq!(out["storage"]["files"][0]["path"], "/boot/grub2/user.cfg");
    }

    #[test]
    fn grub_comes_first_and_user_files_follow() {
        let out = fcos(
            5,
            json!({
                "grub": {"users": [{"name": "root", "password_hash": "x"}]},
                "boot_device": {"luks": {"tpm2": true}},
                "storage": {"files": [{"path": "/etc/a", "mode": 420}],
                            "filesystems": [{"device": "/dev/vdb", "format": "xfs", "path": "/var"}]}
            }),
        );
        let devices: Vec<&str> = out["storage"]["filesystems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["device"].as_str().unwrap())
            .collect();
        assert_eq!(
            devices,
            ["/dev/disk/by-label/boot", "/dev/mapper/root", "/dev/vdb"]
        );
        let paths: Vec<&str> = out["storage"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/boot/grub2/user.cfg", "/etc/a"]);
        // A user's directory at the file's path takes the path (Ignition's node merge).
        let out = fcos(
            5,
            json!({"grub": {"users": [{"name": "root", "password_hash": "x"}]},
                                 "storage": {"directories": [{"path": "/boot/grub2/user.cfg"}]}}),
        );
        assert!(out["storage"].get("files").is_none());
        assert_eq!(
            out["storage"]["directories"],
            json!([{"path": "/boot/grub2/user.cfg"}])
        );
    }

    #[test]
    fn luks_merge_with_a_users_root_volume() {
        // fcos 1.4+ (Ignition 3.3+): clevis is a struct, merged field by field, tang by url.
        let out = fcos(
            4,
            json!({"boot_device": {"luks": {"tang": [{"url": "https://a", "thumbprint": "1"}], "threshold": 1}},
                   "storage": {"luks": [{"name": "root", "options": ["--cipher", "aes"],
                                         "clevis": {"tang": [{"url": "https://b"}], "threshold": 2}}]}}),
        );
        assert_eq!(
            out["storage"]["luks"],
            json!([{"clevis": {"tang": [{"thumbprint": "1", "url": "https://a"}, {"url": "https://b"}], "threshold": 2},
                    "device": "/dev/disk/by-partlabel/root", "label": "luks-root", "name": "root",
                    "options": ["--cipher", "aes"], "wipeVolume": true}])
        );
        // fcos 1.3 (Ignition 3.2): clevis is a pointer, replaced whole by the user's.
        let out = fcos(
            3,
            json!({"boot_device": {"luks": {"tang": [{"url": "https://a", "thumbprint": "1"}], "threshold": 1}},
                   "storage": {"luks": [{"name": "root", "clevis": {"tpm2": true}}]}}),
        );
        assert_eq!(out["storage"]["luks"][0]["clevis"], json!({"tpm2": true}));
    }

    #[test]
    fn tpm2_false_and_null_are_kept_apart() {
        let out = fcos(
            6,
            json!({"boot_device": {"luks": {"tpm2": false, "tang": [{"url": "https://a"}]}}}),
        );
        assert_eq!(
            out["storage"]["luks"][0]["clevis"],
            json!({"tang": [{"url": "https://a"}], "tpm2": false})
        );
        let out = fcos(
            6,
            json!({"boot_device": {"layout": "x86_64", "luks": {"tpm2": null}}}),
        );
        assert!(out.get("storage").is_none());
    }

    // ----- errors -----

    #[test]
    fn boot_device_errors() {
        let e = |doc: Value| errors_of("fcos", (1, 6, 0), json!({ "boot_device": doc }));
        assert_eq!(
            e(
                json!({"layout": "s390x-eckd", "luks": {"device": "/dev/dasda", "cex": {"enabled": true}, "tang": tang()}})
            ),
            ["$.boot_device.luks: cannot use cex with clevis"]
        );
        assert_eq!(
            e(
                json!({"layout": "s390x-eckd", "luks": {"device": "/dev/dasda", "cex": {"enabled": true}, "tpm2": true}})
            ),
            ["$.boot_device.luks: cannot use cex with clevis"]
        );
        assert_eq!(
            e(json!({"layout": "x86_64", "luks": {"cex": {"enabled": true}}})),
            ["$.boot_device.layout: when using cex the targeted architecture must match s390x"]
        );
        assert_eq!(
            e(json!({"luks": {"cex": {"enabled": true}}})),
            ["$.boot_device.luks.cex: when using cex the targeted architecture must match s390x"]
        );
        assert_eq!(
            e(json!({"layout": "sparc"})),
            ["$.boot_device.layout: layout must be one of: aarch64, ppc64le, s390x-eckd, s390x-virt, s390x-zfcp, x86_64"]
        );
        assert_eq!(
            e(json!({"mirror": {"devices": ["/dev/vda"]}})),
            ["$.boot_device.mirror.devices: mirroring requires at least two devices"]
        );
        assert_eq!(
            e(json!({"layout": "s390x-zfcp", "luks": {"tpm2": true}})),
            ["$.boot_device.layout: device is required for layouts: s390x-eckd, s390x-zfcp"]
        );
        assert_eq!(
            e(json!({"layout": "s390x-virt", "mirror": {"devices": ["/dev/vda", "/dev/vdb"]}})),
            ["$.boot_device.layout: mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt"]
        );
        assert_eq!(
            e(json!({"layout": "s390x-eckd", "luks": {"device": "/dev/sda", "tpm2": true}})),
            ["$.boot_device.layout: device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on s390x-zfcp layout"]
        );
        assert_eq!(
            e(json!({"layout": "s390x-zfcp", "luks": {"device": "/dev/dasda", "tpm2": true}})),
            ["$.boot_device.layout: device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on s390x-zfcp layout"]
        );
        // s390x layouts arrive in fcos 1.6
        assert_eq!(
            errors_of("fcos", (1, 5, 0), json!({"boot_device": {"layout": "s390x-virt"}})),
            ["$.boot_device.layout: layout must be one of: aarch64, ppc64le, s390x-eckd, s390x-virt, s390x-zfcp, x86_64"]
        );
        // type errors point at the value
        assert_eq!(
            e(
                json!({"luks": {"tpm2": "maybe", "threshold": "two"}, "mirror": {"devices": "/dev/vda"}})
            ),
            [
                "$.boot_device.luks.threshold: threshold must be an integer, found a string",
                "$.boot_device.luks.tpm2: tpm2 must be a boolean, found a string",
                "$.boot_device.mirror.devices: devices must be a list, found a string",
            ]
        );
    }

    #[test]
    fn filesystem_and_grub_errors() {
        assert_eq!(
            errors_of("fcos", (1, 6, 0), json!({"storage": {"filesystems": [
                {"device": "/dev/vdb", "format": "xfs", "path": "/home", "with_mount_unit": true},
                {"device": "/dev/vdc", "path": "/var/x", "with_mount_unit": true},
                {"device": "/dev/vdd", "format": "xfs", "with_mount_unit": true},
                {"device": "/dev/vde", "format": "xfs", "path": "/opt", "with_mount_unit": false},
                {"device": "/dev/vdf", "format": "xfs", "path": "/variable", "with_mount_unit": "yes"}]}})),
            [
                "$.storage.filesystems.0.path: path must be under /etc or /var if with_mount_unit is true",
                "$.storage.filesystems.4.path: path must be under /etc or /var if with_mount_unit is true",
                "$.storage.filesystems.1.format: format is required if with_mount_unit is true",
                "$.storage.filesystems.2.path: path is required if with_mount_unit is true and format is not swap",
            ]
        );
        // before fcos 1.6 any mount point is allowed
        let out = fcos(
            5,
            json!({"storage": {"filesystems": [{"device": "/dev/vdb", "format": "xfs", "path": "/home", "with_mount_unit": true}]}}),
        );
        assert_eq!(out["systemd"]["units"][0]["name"], "home.mount");
        assert_eq!(
            errors_of(
                "fcos",
                (1, 5, 0),
                json!({"grub": {"users": [{"name": "root"}, {"password_hash": "x"}, {"name": "a", "password_hash": ""}]}})
            ),
            [
                "$.grub.users.0.password_hash: field \"password_hash\" is required",
                "$.grub.users.1.name: field \"name\" is required",
                "$.grub.users.2.password_hash: field \"password_hash\" is required",
            ]
        );
        // grub arrives in fcos 1.5
        let out = fcos(4, json!({"grub": {"users": [{"name": "root"}]}}));
        assert!(out.get("storage").is_none());
    }

    #[test]
    fn variant_filters() {
        let clevis = json!({"storage": {"luks": [{"name": "a", "device": "/dev/vdb", "key_file": {"inline": "k"}},
                                                 {"name": "b", "device": "/dev/vdc", "clevis": {"tpm2": false}}]}});
        assert_eq!(
            errors_of("flatcar", (1, 1, 0), clevis.clone()),
            ["$.storage.luks.1.clevis: clevis is not supported in this spec version"]
        );
        assert!(run("flatcar", (1, 2, 0), &clevis).is_ok());
        assert_eq!(
            errors_of(
                "flatcar",
                (1, 2, 0),
                json!({"storage": {"luks": [{"name": "a", "device": "/dev/dasda", "cex": {"enabled": true}}]}})
            ),
            ["$.storage.luks.0.cex: cex is not currently supported on the target platform"]
        );
        let edge = json!({
            "kernel_arguments": {"should_exist": ["quiet"]},
            "storage": {"disks": [{"device": "/dev/vdb", "wipe_table": true}], "raid": [{"name": "md", "level": "raid1", "devices": ["/dev/vdb"]}],
                        "filesystems": [{"device": "/dev/vdb", "format": "xfs", "path": "/var/x", "with_mount_unit": true}],
                        "luks": [], "files": [{"path": "/etc/motd"}]}
        });
        for (variant, version) in [("r4e", (1, 0, 0)), ("r4e", (1, 2, 0)), ("fiot", (1, 0, 0))] {
            assert_eq!(
                errors_of(variant, version, edge.clone()),
                [
                    "$.kernel_arguments: kernel argument customization is not supported in this spec version",
                    "$.storage.disks: disk customization is not supported in this spec version",
                    "$.storage.filesystems: filesystem customization is not supported in this spec version",
                    "$.storage.raid: raid is not supported in this spec version",
                ]
            );
        }
        // flatcar has mount units but no boot_device (an unused key there)
        let out = run("flatcar", (1, 0, 0), &json!({
            "boot_device": {"luks": {"tpm2": true}},
            "storage": {"filesystems": [{"device": "/dev/vdb", "format": "ext4", "path": "/var/x", "with_mount_unit": true}]}}))
        .unwrap();
        assert_eq!(out["systemd"]["units"][0]["name"], "var-x.mount");
        assert!(out["storage"].get("luks").is_none());
        assert_eq!(
            errors_of("openshift", (4, 14, 0), json!({}))[0],
            "$.variant: variant \"openshift\" has no sugar translator (variants: fcos, flatcar, r4e, fiot)"
        );
    }

    #[test]
    fn with_mount_unit_is_not_left_in_the_output() {
        let doc = json!({"storage": {"filesystems": [{"device": "/dev/vdb", "format": "xfs", "path": "/var/x", "with_mount_unit": true}]}});
        let mut ign = json!({"ignition": {"version": "3.5.0"}, "storage": {"filesystems": [
            {"device": "/dev/vdb", "format": "xfs", "path": "/var/x", "withMountUnit": true}]}});
        desugar(
            &Variant {
                name: "fcos",
                version: (1, 6, 0),
            },
            &doc,
            &mut ign,
        )
        .unwrap();
        assert_eq!(
            ign["storage"]["filesystems"],
            json!([{"device": "/dev/vdb", "format": "xfs", "path": "/var/x"}])
        );
    }

    #[test]
    fn partition_warnings() {
        let warnings = |minor: u32, doc: Value| -> Vec<String> {
            desugar_warnings(
                &Variant {
                    name: "fcos",
                    version: (1, minor, 0),
                },
                &doc,
            )
            .iter()
            .map(|e| e.to_string())
            .collect()
        };
        let doc = json!({
            "boot_device": {"mirror": {"devices": ["/dev/vda", "/dev/vdb"]}},
            "storage": {"disks": [
                {"device": "/dev/vda", "partitions": [{"label": "root"}]},
                {"device": "/dev/vdc", "partitions": [{"label": "root", "number": 4}, {"label": "boot"}, {"label": "data"}]},
                {"device": "/dev/vdd", "wipe_table": true, "partitions": [{"label": "EFI-SYSTEM"}]},
                {"device": "/dev/disk/by-id/coreos-boot-disk", "partitions": [{"label": "root", "number": 4}, {"label": "var"}]}
            ]}
        });
        assert_eq!(
            warnings(6, doc.clone()),
            [
                "$.storage.disks.0.partitions.0.number: partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true",
                "$.storage.disks.1.partitions.1.number: partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true",
                "$.storage.disks.1.partitions.2.number: partitions cannot be reused by label; number must be specified except on boot disk (/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true",
                "$.storage.disks.1.partitions.1.label: incorrect partition number; a new partition will be created using reserved label",
            ]
        );
        // before 1.6 only the reserved labels; before 1.3 no boot_device mirror
        assert_eq!(warnings(4, doc.clone()), ["$.storage.disks.1.partitions.1.label: incorrect partition number; a new partition will be created using reserved label"]);
        assert_eq!(
            warnings(2, doc),
            [
                "$.storage.disks.0.partitions.0.label: incorrect partition number; a new partition will be created using reserved label",
                "$.storage.disks.1.partitions.1.label: incorrect partition number; a new partition will be created using reserved label",
            ]
        );
        assert!(desugar_warnings(&Variant { name: "flatcar", version: (1, 1, 0) },
            &json!({"storage": {"disks": [{"device": "/dev/vdc", "partitions": [{"label": "root"}]}]}})).is_empty());
    }

    // ----- building blocks -----

    #[test]
    fn systemd_path_escaping() {
        for (path, want) in [
            ("/", "-"),
            ("/var", "var"),
            ("/var/lib/x/", "var-lib-x"),
            ("//var//lib", "var-lib"),
            (
                "/dev/disk/by-partlabel/var",
                "dev-disk-by\\x2dpartlabel-var",
            ),
            ("/.hidden/.x", "\\x2ehidden-.x"),
            ("/var/.hidden", "var-.hidden"),
            ("/var/lib/static_key_example", "var-lib-static_key_example"),
            ("/mnt/a b:c", "mnt-a\\x20b:c"),
            ("/mnt/\u{e9}", "mnt-\\xc3\\xa9"),
            ("/mnt/\t", "mnt-\\x9"),
        ] {
            assert_eq!(unit_name_path_escape(path), want, "{path}");
        }
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 1 << 22];
        let n = libdeflater::Decompressor::new()
            .gzip_decompress(data, &mut out)
            .unwrap();
        out.truncate(n);
        out
    }

    /// The payload of a base64 `data:` URL, gunzipped.
    fn gzipped_payload(url: &str) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = url.strip_prefix("data:;base64,").unwrap();
        gunzip(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
    }

    /// Butane chose gzip for `input` (its URL was `butane`); so do we, with the same content.
    fn assert_gzip_like_butane(input: &[u8], butane: &str) {
        let (url, compression) = make_data_url(input, None, true);
        assert_eq!(compression.as_deref(), Some("gzip"));
        assert_eq!(gzipped_payload(&url), input);
        assert_eq!(gzipped_payload(butane), input);
    }

    #[test]
    fn data_urls_as_butane() {
        // Butane's base translate_test.go vectors
        let zzz = "z".repeat(149);
        assert_gzip_like_butane(
            zzz.as_bytes(),
            "data:;base64,H4sIAAAAAAAC/6oajAAQAAD//5tA8d+VAAAA",
        );
        assert_eq!(
            make_data_url(zzz.as_bytes(), None, false),
            (format!("data:,{zzz}"), Some(String::new()))
        );
        assert_eq!(
            make_data_url(zzz.as_bytes(), Some("gzip"), true),
            (format!("data:,{zzz}"), None)
        );
        let random = b"\xc0\x9cl\x01\x89i\xa5\xbfW\xe4\x1b\xf4J_\xb79P\xa3#\xa7";
        assert_eq!(
            make_data_url(random, None, true).0,
            "data:;base64,wJxsAYlppb9X5Bv0Sl+3OVCjI6c="
        );
        let tree = b"tree/subdir/subdir/subdir/subdir/subdir/subdir/subdir/subdir/subdir/file";
        assert_gzip_like_butane(
            tree,
            "data:;base64,H4sIAAAAAAAC/yopSk3VLy5NSsksIptKy8xJBQQAAP//gkRzjkgAAAA=",
        );
        assert_eq!(
            make_data_url(b"tree/file", None, true).0,
            "data:,tree%2Ffile"
        );
        // docs/upgrading-openshift.md, written by Butane
        let lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\neiusmod tempor incididunt ut labore et dolore magna aliqua.  Ut\nenim ad minim veniam, quis nostrud exercitation ullamco laboris\nnisi ut aliquip ex ea commodo consequat.  Duis aute irure dolor in\nreprehenderit in voluptate velit esse cillum dolore eu fugiat\nnulla pariatur.  Excepteur sint occaecat cupidatat non proident,\nsunt in culpa qui officia deserunt mollit anim id est laborum.\n";
        assert_gzip_like_butane(lorem.as_bytes(), "data:;base64,H4sIAAAAAAAC/zSQQY4bMQwE7/OKfsBgXpHccs0DGKntEJBIWSINP3+htfcmQECxq/74ZIeOlR3Vm08sDUhnnChuiyUYOSFVh66idgebxonFiuoHNVf3imAfPqFWtGpNC2SgyT+fBOONJrrcTSBNHykX8DcOmnZIRdf9eNJU+olH6oL5ipkVfHEWDQl1Q7YmvfgbreswXbpPfTN1gC9QULx3r/42eKTEBfzaTMkgdObkx1btmByT/2mVUwNqeHrLERLEc7uCaxFFW/tpRDBxy7tKHLYXYchUiZwX8PtVOIK5S1rASxEWCZQcWiUkYG4Y07XS4jzWjqWGkm3INoffblpUULk492/3tnfITqQVXJ+02a/jKwAA//+jjAk6wQEAAA==");
        // RFC 2396 unreserved characters stay as they are
        assert_eq!(
            make_data_url(b"a-_.!~*'()b", None, true).0,
            "data:,a-_.!~*'()b"
        );
    }

    #[test]
    fn gzip_round_trips_on_large_inputs() {
        let mut seed = 0x2545_f491_u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let words = [
            "grub",
            "butane",
            "ignition ",
            "\n",
            "/var/lib/",
            "password_pbkdf2 ",
            "zz",
            "0123456789",
        ];
        let mut text = Vec::new();
        while text.len() < 300_000 {
            let r = rnd();
            if r % 7 == 0 {
                text.push((r >> 8) as u8);
            } else {
                text.extend_from_slice(words[(r as usize >> 4) % words.len()].as_bytes());
            }
        }
        let noise: Vec<u8> = (0..100_000).map(|_| rnd() as u8).collect();
        for input in [
            Vec::new(),
            b"a".to_vec(),
            vec![0u8; 200_000],
            text.clone(),
            noise,
            [text.clone(), vec![7u8; 70_000], text[..40_000].to_vec()].concat(),
        ] {
            assert_eq!(
                gunzip(&gzip_best(&input)),
                input,
                "round trip of {} bytes",
                input.len()
            );
        }
    }
}
