//! Rules for `storage`: disks and partitions, RAID, filesystems, LUKS, and the one path space
//! that files, directories and links share.

use std::collections::{HashMap, HashSet};

use super::{check_path, msg, non_empty, At, Validator};
use crate::gopath;
use crate::model::*;
use crate::version::Version::*;

const DISK_DEVICE_REQUIRED: &str = "disk device is required";
const PARTITION_NUMBERS_COLLIDE: &str = "partition numbers collide";
const PARTITIONS_OVERLAP: &str = "partitions overlap";
const DUPLICATE_LABELS: &str = "cannot use the same partition label twice";
const SHOULD_NOT_EXIST_WITH_OTHERS: &str =
    "shouldExist specified false with other options also specified";
const NEED_LABEL_OR_NUMBER: &str = "a partition number >= 1 or a label must be specified";
const PARTITION_LABEL_TOO_LONG: &str = "partition labels may not exceed 36 characters";
const PARTITION_LABEL_COLON: &str = "partition label will be truncated to text before the colon";
const NOT_A_GUID: &str = "doesn't match the form \"01234567-89AB-CDEF-EDCB-A98765432101\"";
const RAID_LEVEL_REQUIRED: &str = "raid level is required";
const RAID_LEVEL_UNRECOGNIZED: &str = "unrecognized raid level";
const RAID_SPARES_UNSUPPORTED: &str = "spares unsupported for linear and raid0 arrays";
const RAID_DEVICES_REQUIRED: &str = "raid devices required";
const FORMAT_INVALID: &str = "invalid filesystem format";
const FORMAT_NEEDED: &str = "format cannot be empty when path, label, uuid, wipeFilesystem, options, or mountOptions is specified";
const LABEL_NEEDS_FORMAT: &str = "filesystem must specify format if label is specified";
const PARTITIONS_OVERWRITTEN: &str = "filesystem overwrites partitioned device";
const IMPLICIT_WIPE: &str = "device matches disk with wipeTable enabled; filesystem will be wiped";
const NO_DEVICE: &str = "device not specified";
const VIRTIOFS_TAG_TOO_LONG: &str = "virtiofs device tag cannot be longer than 36 bytes";
const VIRTIOFS_LABEL: &str = "filesystem labels cannot be set when using virtiofs";
const UUID_NOT_BLOCK: &str = "filesystem uuid cannot be set for non-block-device filesystems";
const WIPE_NOT_BLOCK: &str = "wipeFilesystem cannot be set for non-block-device filesystems";
const OPTIONS_NOT_BLOCK: &str =
    "filesystem options (mkfs) cannot be set for non-block-device filesystems";
const ILLEGAL_MODE: &str = "illegal file mode";
const MODE_SPECIAL_BITS: &str =
    "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0";
const OVERWRITE_WITHOUT_SOURCE: &str = "overwrite must be false if source is unspecified";
const ID_AND_NAME: &str = "cannot set both id and name";
const FILE_UNDER_LINK: &str = "file path includes link in config";
const DIRECTORY_UNDER_LINK: &str = "directory path includes link in config";
const LINK_UNDER_LINK: &str = "link path includes link in config";
const LINK_TARGET_REQUIRED: &str = "link target is required";
const HARD_LINK_TO_DIRECTORY: &str = "hard link target is a directory";
const HARD_LINK_OWNER: &str = "user/group ignored for hard link";
const LUKS_NAME_SLASH: &str = "device names cannot contain slashes";
const LUKS_LABEL_TOO_LONG: &str = "luks device labels cannot be longer than 47 characters";
const LUKS_KEY_FILE_INVALID: &str = "invalid key-file source";
const CLEVIS_CUSTOM_WITH_OTHERS: &str =
    "cannot use custom clevis config with tpm2, tang, or threshold";
const CLEVIS_PIN_REQUIRED: &str = "missing required custom clevis pin";
const CLEVIS_PIN_UNKNOWN: &str = "unsupported clevis pin";
const CLEVIS_CONFIG_REQUIRED: &str = "missing required custom clevis config";
const TANG_THUMBPRINT_REQUIRED: &str = "thumbprint is required";
const TANG_ADVERTISEMENT_INVALID: &str = "advertisement is not valid JSON";
const TANG_SCHEME: &str = "invalid url scheme";
const CEX_WITH_CLEVIS: &str = "cannot use cex with clevis";
const CEX_WITH_KEY_FILE: &str = "cannot use key file with cex";

impl Validator {
    pub(super) fn storage(&mut self, storage: &Storage, at: &At) {
        for (index, disk) in storage.disks.iter().enumerate() {
            self.disk(disk, &at.k("disks").i(index));
        }
        let devices = storage.disks.iter().map(|d| d.device.as_str());
        self.duplicates(&at.k("disks"), devices);

        for (index, raid) in storage.raid.iter().enumerate() {
            self.raid(raid, &at.k("raid").i(index));
        }
        self.duplicates(&at.k("raid"), storage.raid.iter().map(|r| r.name.as_str()));

        for (index, filesystem) in storage.filesystems.iter().enumerate() {
            self.filesystem(filesystem, &at.k("filesystems").i(index));
        }
        let devices = storage.filesystems.iter().map(|f| f.device.as_str());
        self.duplicates(&at.k("filesystems"), devices);

        for (index, directory) in storage.directories.iter().enumerate() {
            let node_at = at.k("directories").i(index);
            self.node(&directory.path, &directory.user, &directory.group, &node_at);
            self.mode(directory.mode, &node_at.k("mode"));
        }
        for (index, file) in storage.files.iter().enumerate() {
            let node_at = at.k("files").i(index);
            self.node(&file.path, &file.user, &file.group, &node_at);
            self.mode(file.mode, &node_at.k("mode"));
            if file.overwrite == Some(true) && file.contents.source.is_none() {
                self.error(&node_at.k("overwrite"), OVERWRITE_WITHOUT_SOURCE);
            }
            self.resource(&file.contents, &node_at.k("contents"));
            for (index, append) in file.append.iter().enumerate() {
                self.resource(append, &node_at.k("append").i(index));
            }
        }
        for (index, link) in storage.links.iter().enumerate() {
            self.node(&link.path, &link.user, &link.group, &at.k("links").i(index));
        }
        // Directories, files and links share one path space, checked in Ignition's order.
        let mut seen = HashSet::new();
        let directories = storage.directories.iter().map(|d| d.path.as_str());
        self.duplicates_across(&mut seen, &at.k("directories"), directories);
        let files = storage.files.iter().map(|f| f.path.as_str());
        self.duplicates_across(&mut seen, &at.k("files"), files);
        let links = storage.links.iter().map(|l| l.path.as_str());
        self.duplicates_across(&mut seen, &at.k("links"), links);

        if self.since(V3_2_0) {
            for (index, luks) in storage.luks.iter().enumerate() {
                self.luks(luks, &at.k("luks").i(index));
            }
            self.duplicates(&at.k("luks"), storage.luks.iter().map(|l| l.name.as_str()));
        }

        self.nodes_under_links(storage, at);
        self.links(storage, at);
        self.filesystems_on_disks(storage, at);
    }

    fn disk(&mut self, disk: &Disk, at: &At) {
        let partitions_at = at.k("partitions");
        for (index, partition) in disk.partitions.iter().enumerate() {
            self.partition(partition, &partitions_at.i(index));
        }
        let keys: Vec<String> = disk.partitions.iter().map(partition_key).collect();
        self.duplicates(&partitions_at, keys.iter().map(String::as_str));

        if disk.device.is_empty() {
            self.error(&at.k("device"), DISK_DEVICE_REQUIRED);
            return;
        }
        self.check(&at.k("device"), check_path(&disk.device));

        let mut numbers = HashSet::new();
        let collision = disk
            .partitions
            .iter()
            .position(|p| p.number().is_some_and(|n| !numbers.insert(n)));
        if let Some(index) = collision {
            self.error(&partitions_at.i(index), PARTITION_NUMBERS_COLLIDE);
        }
        if let Some(index) = overlapping_partition(&disk.partitions) {
            self.error(&partitions_at.i(index), PARTITIONS_OVERLAP);
        }
        let mut labels = HashSet::new();
        let collision = disk
            .partitions
            .iter()
            .position(|p| p.label.as_ref().is_some_and(|l| !labels.insert(l)));
        if let Some(index) = collision {
            self.error(&partitions_at.i(index), DUPLICATE_LABELS);
        }
    }

    fn partition(&mut self, partition: &Partition, at: &At) {
        let has_others = partition.label.is_some()
            || non_empty(&partition.type_guid)
            || non_empty(&partition.guid)
            || partition.start_mib.is_some()
            || partition.size_mib.is_some();
        if partition.should_exist == Some(false) && has_others {
            self.error(at, SHOULD_NOT_EXIST_WITH_OTHERS);
        }
        if partition.number().is_none() && partition.label.is_none() {
            self.error(at, NEED_LABEL_OR_NUMBER);
        }
        if let Some(label) = &partition.label {
            // GPT names hold 36 UTF-16 units; Ignition counts bytes.
            if label.len() > 36 {
                self.error(&at.k("label"), PARTITION_LABEL_TOO_LONG);
            } else if label.contains(':') {
                // sgdisk splits its arguments at colons and cannot escape them.
                self.error(&at.k("label"), PARTITION_LABEL_COLON);
            }
        }
        for (key, guid) in [
            ("guid", &partition.guid),
            ("typeGuid", &partition.type_guid),
        ] {
            if guid.as_deref().is_some_and(|g| !is_guid_or_empty(g)) {
                self.error(&at.k(key), NOT_A_GUID);
            }
        }
    }

    fn raid(&mut self, raid: &Raid, at: &At) {
        let level = raid.level.as_deref().unwrap_or("");
        let level_error = match level {
            "" if self.since(V3_3_0) => Some(RAID_LEVEL_REQUIRED),
            "linear" | "raid0" | "0" | "stripe" => raid
                .spares
                .is_some_and(|spares| spares != 0)
                .then_some(RAID_SPARES_UNSUPPORTED),
            "raid1" | "1" | "mirror" | "raid4" | "4" | "raid5" | "5" | "raid6" | "6" | "raid10"
            | "10" => None,
            _ => Some(RAID_LEVEL_UNRECOGNIZED),
        };
        if let Some(message) = level_error {
            self.error(&at.k("level"), message);
        }
        let devices_at = at.k("devices");
        if raid.devices.is_empty() {
            self.error(&devices_at, RAID_DEVICES_REQUIRED);
        }
        for (index, device) in raid.devices.iter().enumerate() {
            self.check(&devices_at.i(index), check_path(device));
        }
        self.duplicates(&devices_at, raid.devices.iter().map(String::as_str));
    }

    fn filesystem(&mut self, filesystem: &Filesystem, at: &At) {
        if let Some(path) = filesystem.path.as_deref().filter(|p| !p.is_empty()) {
            self.check(&at.k("path"), check_path(path));
        }
        let format = filesystem.format.as_deref().unwrap_or("");
        let virtiofs = self.since(V3_7_0Experimental) && format == "virtiofs";
        if virtiofs {
            if filesystem.device.is_empty() {
                self.error(&at.k("device"), NO_DEVICE);
            } else if filesystem.device.len() > 36 {
                self.error(&at.k("device"), VIRTIOFS_TAG_TOO_LONG);
            }
        } else {
            self.check(&at.k("device"), check_path(&filesystem.device));
        }

        if format.is_empty() {
            let has_others = non_empty(&filesystem.path)
                || non_empty(&filesystem.label)
                || non_empty(&filesystem.uuid)
                || filesystem.wipe_filesystem == Some(true)
                || !filesystem.mount_options.is_empty()
                || !filesystem.options.is_empty();
            if has_others {
                self.error(&at.k("format"), FORMAT_NEEDED);
            }
        } else if !self.known_format(format) {
            self.error(&at.k("format"), FORMAT_INVALID);
        }

        if let Some(label) = filesystem.label.as_deref().filter(|l| !l.is_empty()) {
            let problem = match format {
                "" => Some(LABEL_NEEDS_FORMAT.to_owned()),
                "virtiofs" if virtiofs => Some(VIRTIOFS_LABEL.to_owned()),
                _ => label_limit(format)
                    .filter(|max| label.len() > *max)
                    .map(|max| {
                        format!(
                            "filesystem labels cannot be longer than {max} characters when using {format}"
                        )
                    }),
            };
            if let Some(message) = problem {
                self.error(&at.k("label"), message);
            }
        }

        if virtiofs {
            if non_empty(&filesystem.uuid) {
                self.error(&at.k("uuid"), UUID_NOT_BLOCK);
            }
            if filesystem.wipe_filesystem == Some(true) {
                self.error(&at.k("wipeFilesystem"), WIPE_NOT_BLOCK);
            }
            if !filesystem.options.is_empty() {
                self.error(&at.k("options"), OPTIONS_NOT_BLOCK);
            }
        }
    }

    fn known_format(&self, format: &str) -> bool {
        match format {
            "ext4" | "btrfs" | "xfs" | "swap" | "vfat" => true,
            "none" => self.since(V3_3_0),
            "virtiofs" => self.since(V3_7_0Experimental),
            _ => false,
        }
    }

    fn node(&mut self, path: &str, user: &NodeOwner, group: &NodeOwner, at: &At) {
        self.check(&at.k("path"), check_path(path));
        for (key, owner) in [("user", user), ("group", group)] {
            if owner.id.is_some() && non_empty(&owner.name) {
                self.error(&at.k(key), ID_AND_NAME);
            }
        }
    }

    fn mode(&mut self, mode: Option<i64>, at: &At) {
        let Some(mode) = mode else { return };
        if !(0..=0o7777).contains(&mode) {
            self.error(at, ILLEGAL_MODE);
        }
        // Go converts to uint32 before masking; `as u32` truncates the same way.
        if !self.since(V3_6_0) && (mode as u32) & 0o7000 != 0 {
            self.warning(at, MODE_SPECIAL_BITS);
        }
    }

    fn nodes_under_links(&mut self, storage: &Storage, at: &At) {
        let link_prefixes: Vec<String> = storage
            .links
            .iter()
            .map(|l| format!("{}/", l.path))
            .collect();
        let under_link = |path: &str| {
            link_prefixes
                .iter()
                .filter(|p| path.starts_with(p.as_str()))
                .count()
        };
        let lists = [
            (
                "directories",
                storage
                    .directories
                    .iter()
                    .map(|d| d.path.as_str())
                    .collect::<Vec<_>>(),
                DIRECTORY_UNDER_LINK,
            ),
            (
                "files",
                storage.files.iter().map(|f| f.path.as_str()).collect(),
                FILE_UNDER_LINK,
            ),
            (
                "links",
                storage.links.iter().map(|l| l.path.as_str()).collect(),
                LINK_UNDER_LINK,
            ),
        ];
        for (list, paths, message) in lists {
            for (index, path) in paths.into_iter().enumerate() {
                // One error per link above the path, as Ignition reports it.
                for _ in 0..under_link(path) {
                    self.error(&at.k(list).i(index), message);
                }
            }
        }
    }

    fn links(&mut self, storage: &Storage, at: &At) {
        for (index, link) in storage.links.iter().enumerate() {
            let link_at = at.k("links").i(index);
            let target = link.target.as_deref().unwrap_or("");
            if self.since(V3_3_0) && target.is_empty() {
                self.error(&link_at.k("target"), LINK_TARGET_REQUIRED);
                continue;
            }
            if link.hard != Some(true) {
                continue;
            }
            // Ignition resolves a relative hard link target against the link's own path.
            let mut resolved = gopath::clean(target);
            if !resolved.starts_with('/') {
                resolved = gopath::join(&link.path, target);
            }
            for directory in &storage.directories {
                if directory.path == resolved {
                    self.error(&link_at, HARD_LINK_TO_DIRECTORY);
                }
            }
            let owners = [
                ("user", "id", link.user.id.is_some()),
                ("user", "name", link.user.name.is_some()),
                ("group", "id", link.group.id.is_some()),
                ("group", "name", link.group.name.is_some()),
            ];
            for (owner, key, set) in owners {
                if set {
                    self.warning(&link_at.k(owner).k(key), HARD_LINK_OWNER);
                }
            }
        }
    }

    fn filesystems_on_disks(&mut self, storage: &Storage, at: &At) {
        let disks: HashMap<&str, &Disk> = storage
            .disks
            .iter()
            .map(|d| (d.device.as_str(), d))
            .collect();
        for (index, filesystem) in storage.filesystems.iter().enumerate() {
            let Some(disk) = disks.get(filesystem.device.as_str()) else {
                continue;
            };
            let device_at = at.k("filesystems").i(index).k("device");
            if !disk.partitions.is_empty() {
                self.warning(&device_at, PARTITIONS_OVERWRITTEN);
            } else if filesystem.wipe_filesystem != Some(true) && disk.wipe_table == Some(true) {
                self.warning(&device_at, IMPLICIT_WIPE);
            }
        }
    }

    fn luks(&mut self, luks: &Luks, at: &At) {
        if luks.name.contains('/') {
            self.error(&at.k("name"), LUKS_NAME_SLASH);
        }
        if luks.label.as_deref().is_some_and(|l| l.len() > 47) {
            self.error(&at.k("label"), LUKS_LABEL_TOO_LONG);
        }
        match luks.device.as_deref() {
            None | Some("") => self.error(&at.k("device"), DISK_DEVICE_REQUIRED),
            Some(device) => self.check(&at.k("device"), check_path(device)),
        }

        let clevis = &luks.clevis;
        let custom = clevis.custom.as_ref();
        let custom_set = if self.since(V3_3_0) {
            custom.is_some_and(|c| non_empty(&c.pin))
        } else {
            custom.is_some()
        };
        let other_pins = !clevis.tang.is_empty()
            || clevis.tpm2 == Some(true)
            || clevis.threshold.is_some_and(|t| t != 0);
        if custom_set && other_pins {
            self.error(&at.k("clevis"), CLEVIS_CUSTOM_WITH_OTHERS);
        }

        if self
            .check_optional_url(luks.key_file.source.as_deref())
            .is_err()
        {
            self.error(&at.k("keyFile"), LUKS_KEY_FILE_INVALID);
        }
        self.resource(&luks.key_file, &at.k("keyFile"));

        if self.since(V3_5_0) && luks.cex.enabled == Some(true) {
            let clevis_present = custom.is_some_and(|c| non_empty(&c.pin)) || other_pins;
            if clevis_present {
                self.error(&at.k("cex"), CEX_WITH_CLEVIS);
            }
            if non_empty(&luks.key_file.source) {
                self.error(&at.k("cex"), CEX_WITH_KEY_FILE);
            }
        }

        if let Some(custom) = custom {
            self.clevis_custom(custom, &at.k("clevis").k("custom"));
        }
        let tang_at = at.k("clevis").k("tang");
        for (index, tang) in clevis.tang.iter().enumerate() {
            self.tang(tang, &tang_at.i(index));
        }
        self.duplicates(&tang_at, clevis.tang.iter().map(|t| t.url.as_str()));
        if self.since(V3_4_0) {
            let options = luks.open_options.iter().map(String::as_str);
            self.duplicates(&at.k("openOptions"), options);
        }
    }

    fn clevis_custom(&mut self, custom: &ClevisCustom, at: &At) {
        let pin = custom.pin.as_deref().unwrap_or("");
        let config = custom.config.as_deref().unwrap_or("");
        let needs_network = custom.needs_network == Some(true) && self.since(V3_3_0);
        if pin.is_empty() && config.is_empty() && !needs_network {
            return;
        }
        if pin.is_empty() {
            // 3.2.0 had no "required" check: an empty pin was just not a known one.
            let message = if self.since(V3_3_0) {
                CLEVIS_PIN_REQUIRED
            } else {
                CLEVIS_PIN_UNKNOWN
            };
            self.error(&at.k("pin"), message);
        } else if !self.since(V3_6_0) && !matches!(pin, "tpm2" | "tang" | "sss") {
            self.error(&at.k("pin"), CLEVIS_PIN_UNKNOWN);
        }
        if config.is_empty() {
            self.error(&at.k("config"), CLEVIS_CONFIG_REQUIRED);
        }
    }

    fn tang(&mut self, tang: &Tang, at: &At) {
        match crate::gourl::parse(&tang.url) {
            Err(_) => self.error(&at.k("url"), msg::INVALID_URL),
            Ok(url) if matches!(url.scheme.as_str(), "http" | "https") => {}
            Ok(_) => self.error(&at.k("url"), TANG_SCHEME),
        }
        if !non_empty(&tang.thumbprint) {
            self.error(&at.k("thumbprint"), TANG_THUMBPRINT_REQUIRED);
        }
        if self.since(V3_4_0) {
            if let Some(advertisement) = tang.advertisement.as_deref().filter(|a| !a.is_empty()) {
                if serde_json::from_str::<serde_json::Value>(advertisement).is_err() {
                    self.error(&at.k("advertisement"), TANG_ADVERTISEMENT_INVALID);
                }
            }
        }
    }
}

/// Ignition's duplicate key for a partition: its number, else its label.
fn partition_key(partition: &Partition) -> String {
    match (partition.number(), &partition.label) {
        (Some(number), _) => format!("number:{number}"),
        (None, Some(label)) => format!("label:{label}"),
        (None, None) => String::new(),
    }
}

/// The index of a partition that an explicitly placed partition overlaps, checked as
/// Ignition does: only partitions with a start and size, and a start other than 0 ("the
/// largest free block", unknown without the disk).
fn overlapping_partition(partitions: &[Partition]) -> Option<usize> {
    let placed = |p: &Partition| match (p.start_mib, p.size_mib) {
        (Some(start), Some(size)) if start != 0 => {
            // A size of 0 means "fill the free space": only the start is known.
            let end = if size == 0 {
                start
            } else {
                start.wrapping_add(size).wrapping_sub(1)
            };
            Some((start, end))
        }
        _ => None,
    };
    for (p_index, p) in partitions.iter().enumerate() {
        let Some((p_start, p_end)) = placed(p) else {
            continue;
        };
        for (index, o) in partitions.iter().enumerate() {
            // Ignition's `p == o` compares pointer fields, so it only skips the entry itself.
            if index == p_index {
                continue;
            }
            let Some((o_start, o_end)) = placed(o) else {
                continue;
            };
            let start_inside = p_start >= o_start && p_start <= o_end;
            let end_inside = p_end >= o_start && p_end <= o_end;
            let straddles = p_start < o_start && p_end > o_end;
            if start_inside || end_inside || straddles {
                return Some(index);
            }
        }
    }
    None
}

/// `01234567-89AB-CDEF-EDCB-A98765432101` in either case, or "".
fn is_guid_or_empty(guid: &str) -> bool {
    if guid.is_empty() {
        return true;
    }
    let groups: Vec<&str> = guid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// mkfs label limits in bytes (ext4 16, btrfs 256, xfs 12, swap 15 as mkswap truncates, vfat 11).
fn label_limit(format: &str) -> Option<usize> {
    match format {
        "ext4" => Some(16),
        "btrfs" => Some(256),
        "xfs" => Some(12),
        "swap" => Some(15),
        "vfat" => Some(11),
        _ => None,
    }
}
