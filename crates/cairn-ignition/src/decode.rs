//! Reads a JSON value into the model with the key set of one spec version, as Ignition's Go
//! unmarshalling does: a key the version does not know is a warning and is ignored, `null` is
//! the same as absent, and a value of the wrong type is an error at its path.
//!
//! Where an older spec had a plain string that a newer one made optional (a link's `target`
//! and a RAID `level` before 3.3.0, a 3.0.0 CA `source`, the 3.2.0 clevis `custom` fields),
//! an absent key reads as `Some("")`, which is what Ignition's up-translation produces.

use serde_json::{Map, Value};

use crate::model::*;
use crate::report::{PathElem, Report};
use crate::version::Version;
use crate::version::Version::*;

pub(crate) struct Decoded {
    pub config: Config,
    /// Paths of the keys the version does not know, for stripping them on output.
    pub unused_keys: Vec<Vec<PathElem>>,
}

pub(crate) fn decode(value: &Value, version: Version, report: &mut Report) -> Decoded {
    let mut decoder = Decoder {
        version,
        report,
        path: Vec::new(),
        unused_keys: Vec::new(),
    };
    let config = decoder.object(value, Decoder::config);
    Decoded {
        config,
        unused_keys: decoder.unused_keys,
    }
}

/// Which flavour of fetched resource is read; spec 3.0.0 had three different subsets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ResourceKind {
    /// `ignition.config.merge` / `replace` (3.0.0: `source`, `verification`).
    ConfigReference,
    /// `ignition.security.tls.certificateAuthorities` (3.0.0: required `source`, `verification`).
    CertificateAuthority,
    /// `storage.files[].contents` / `append` (3.0.0: no `httpHeaders`).
    FileContents,
    /// `storage.luks[].keyFile` (3.2.0+, always a full resource).
    KeyFile,
}

/// The keys of one JSON object and which of them were read.
struct Fields<'v> {
    map: &'v Map<String, Value>,
    used: Vec<&'static str>,
}

struct Decoder<'r> {
    version: Version,
    report: &'r mut Report,
    path: Vec<PathElem>,
    unused_keys: Vec<Vec<PathElem>>,
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Decoder<'_> {
    fn since(&self, version: Version) -> bool {
        self.version >= version
    }

    fn type_error(&mut self, expected: &str, found: &Value) {
        let message = format!("expected {expected}, found {}", kind_of(found));
        self.report.error(self.path.clone(), message);
    }

    /// Reads `value` as an object with `read`; `null` or a wrong type give the default.
    fn object<T: Default>(
        &mut self,
        value: &Value,
        read: impl FnOnce(&mut Self, &mut Fields) -> T,
    ) -> T {
        let map = match value {
            Value::Null => return T::default(),
            Value::Object(map) => map,
            other => {
                self.type_error("an object", other);
                return T::default();
            }
        };
        let mut fields = Fields {
            map,
            used: Vec::new(),
        };
        let out = read(self, &mut fields);
        for key in map.keys() {
            if !fields.used.contains(&key.as_str()) {
                let mut path = self.path.clone();
                path.push(PathElem::Key(key.clone()));
                self.report
                    .warning(path.clone(), format!("unused key {key}"));
                self.unused_keys.push(path);
            }
        }
        out
    }

    /// Runs `read` on the value of `key` if it is present and not `null`. Like Go's
    /// `encoding/json`, a key differing only in ASCII case is read when the exact key is
    /// absent, but it is still reported as unused (Ignition's unused-key check is exact).
    fn field<T>(
        &mut self,
        fields: &mut Fields,
        key: &'static str,
        read: impl FnOnce(&mut Self, &Value) -> Option<T>,
    ) -> Option<T> {
        fields.used.push(key);
        let value = fields.map.get(key).or_else(|| {
            let mut folded = fields
                .map
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key));
            folded.next().map(|(_, v)| v)
        })?;
        if value.is_null() {
            return None;
        }
        self.path.push(PathElem::Key(key.to_owned()));
        let out = read(self, value);
        self.path.pop();
        out
    }

    fn string_value(&mut self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.type_error("a string", other);
                None
            }
        }
    }

    fn opt_string(&mut self, fields: &mut Fields, key: &'static str) -> Option<String> {
        self.field(fields, key, Self::string_value)
    }

    /// A key that Go reads into a plain `string`: absent is "".
    fn string(&mut self, fields: &mut Fields, key: &'static str) -> String {
        self.opt_string(fields, key).unwrap_or_default()
    }

    fn opt_bool(&mut self, fields: &mut Fields, key: &'static str) -> Option<bool> {
        self.field(fields, key, |d, value| match value {
            Value::Bool(b) => Some(*b),
            other => {
                d.type_error("a boolean", other);
                None
            }
        })
    }

    /// Go's `int`: a JSON number without fraction or exponent that fits 64 bits.
    fn opt_int(&mut self, fields: &mut Fields, key: &'static str) -> Option<i64> {
        self.field(fields, key, |d, value| match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(i),
                None => {
                    let message = format!("expected an integer, found {n}");
                    d.report.error(d.path.clone(), message);
                    None
                }
            },
            other => {
                d.type_error("an integer", other);
                None
            }
        })
    }

    fn nested<T: Default>(
        &mut self,
        fields: &mut Fields,
        key: &'static str,
        read: impl FnOnce(&mut Self, &mut Fields) -> T,
    ) -> T {
        self.field(fields, key, |d, value| Some(d.object(value, read)))
            .unwrap_or_default()
    }

    fn list<T: Default>(
        &mut self,
        fields: &mut Fields,
        key: &'static str,
        mut read: impl FnMut(&mut Self, &Value) -> T,
    ) -> Vec<T> {
        self.field(fields, key, |d, value| {
            let Value::Array(items) = value else {
                d.type_error("a list", value);
                return None;
            };
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                d.path.push(PathElem::Index(index));
                // Go decodes a null list element as the zero value.
                out.push(if item.is_null() {
                    T::default()
                } else {
                    read(d, item)
                });
                d.path.pop();
            }
            Some(out)
        })
        .unwrap_or_default()
    }

    fn object_list<T: Default>(
        &mut self,
        fields: &mut Fields,
        key: &'static str,
        read: fn(&mut Self, &mut Fields) -> T,
    ) -> Vec<T> {
        self.list(fields, key, |d, value| d.object(value, read))
    }

    fn string_list(&mut self, fields: &mut Fields, key: &'static str) -> Vec<String> {
        self.list(fields, key, |d, value| {
            d.string_value(value).unwrap_or_default()
        })
    }

    fn config(&mut self, f: &mut Fields) -> Config {
        Config {
            ignition: self.nested(f, "ignition", Self::ignition),
            kernel_arguments: if self.since(V3_3_0) {
                self.nested(f, "kernelArguments", |d, f| KernelArguments {
                    should_exist: d.string_list(f, "shouldExist"),
                    should_not_exist: d.string_list(f, "shouldNotExist"),
                })
            } else {
                KernelArguments::default()
            },
            passwd: self.nested(f, "passwd", |d, f| Passwd {
                groups: d.object_list(f, "groups", Self::passwd_group),
                users: d.object_list(f, "users", Self::passwd_user),
            }),
            storage: self.nested(f, "storage", Self::storage),
            systemd: self.nested(f, "systemd", |d, f| Systemd {
                units: d.object_list(f, "units", Self::unit),
            }),
        }
    }

    fn ignition(&mut self, f: &mut Fields) -> Ignition {
        Ignition {
            config: self.nested(f, "config", |d, f| IgnitionConfig {
                merge: d.list(f, "merge", |d, v| {
                    d.resource(v, ResourceKind::ConfigReference)
                }),
                replace: d
                    .field(f, "replace", |d, v| {
                        Some(d.resource(v, ResourceKind::ConfigReference))
                    })
                    .unwrap_or_default(),
            }),
            proxy: if self.since(V3_1_0) {
                self.nested(f, "proxy", |d, f| Proxy {
                    http_proxy: d.opt_string(f, "httpProxy"),
                    https_proxy: d.opt_string(f, "httpsProxy"),
                    no_proxy: d.string_list(f, "noProxy"),
                })
            } else {
                Proxy::default()
            },
            security: self.nested(f, "security", |d, f| Security {
                tls: d.nested(f, "tls", |d, f| Tls {
                    certificate_authorities: d.list(f, "certificateAuthorities", |d, v| {
                        d.resource(v, ResourceKind::CertificateAuthority)
                    }),
                }),
            }),
            timeouts: self.nested(f, "timeouts", |d, f| Timeouts {
                http_response_headers: d.opt_int(f, "httpResponseHeaders"),
                http_total: d.opt_int(f, "httpTotal"),
            }),
            version: self.string(f, "version"),
        }
    }

    fn resource(&mut self, value: &Value, kind: ResourceKind) -> Resource {
        self.object(value, |d, f| {
            let full = d.since(V3_1_0) || kind == ResourceKind::KeyFile;
            Resource {
                compression: if full || kind == ResourceKind::FileContents {
                    d.opt_string(f, "compression")
                } else {
                    None
                },
                http_headers: if full {
                    d.object_list(f, "httpHeaders", |d, f| HttpHeader {
                        name: d.string(f, "name"),
                        value: d.opt_string(f, "value"),
                    })
                } else {
                    Vec::new()
                },
                source: if !full && kind == ResourceKind::CertificateAuthority {
                    Some(d.string(f, "source"))
                } else {
                    d.opt_string(f, "source")
                },
                verification: d.nested(f, "verification", |d, f| Verification {
                    hash: d.opt_string(f, "hash"),
                }),
            }
        })
    }

    fn passwd_group(&mut self, f: &mut Fields) -> PasswdGroup {
        PasswdGroup {
            gid: self.opt_int(f, "gid"),
            name: self.string(f, "name"),
            password_hash: self.opt_string(f, "passwordHash"),
            should_exist: if self.since(V3_2_0) {
                self.opt_bool(f, "shouldExist")
            } else {
                None
            },
            system: self.opt_bool(f, "system"),
        }
    }

    fn passwd_user(&mut self, f: &mut Fields) -> PasswdUser {
        PasswdUser {
            gecos: self.opt_string(f, "gecos"),
            groups: self.string_list(f, "groups"),
            home_dir: self.opt_string(f, "homeDir"),
            name: self.string(f, "name"),
            no_create_home: self.opt_bool(f, "noCreateHome"),
            no_log_init: self.opt_bool(f, "noLogInit"),
            no_user_group: self.opt_bool(f, "noUserGroup"),
            password_hash: self.opt_string(f, "passwordHash"),
            primary_group: self.opt_string(f, "primaryGroup"),
            ssh_authorized_keys: self.string_list(f, "sshAuthorizedKeys"),
            shell: self.opt_string(f, "shell"),
            should_exist: if self.since(V3_2_0) {
                self.opt_bool(f, "shouldExist")
            } else {
                None
            },
            system: self.opt_bool(f, "system"),
            uid: self.opt_int(f, "uid"),
        }
    }

    fn storage(&mut self, f: &mut Fields) -> Storage {
        Storage {
            directories: self.object_list(f, "directories", |d, f| Directory {
                group: d.nested(f, "group", Self::owner),
                overwrite: d.opt_bool(f, "overwrite"),
                path: d.string(f, "path"),
                user: d.nested(f, "user", Self::owner),
                mode: d.opt_int(f, "mode"),
            }),
            disks: self.object_list(f, "disks", |d, f| Disk {
                device: d.string(f, "device"),
                partitions: d.object_list(f, "partitions", Self::partition),
                wipe_table: d.opt_bool(f, "wipeTable"),
            }),
            files: self.object_list(f, "files", |d, f| File {
                group: d.nested(f, "group", Self::owner),
                overwrite: d.opt_bool(f, "overwrite"),
                path: d.string(f, "path"),
                user: d.nested(f, "user", Self::owner),
                append: d.list(f, "append", |d, v| {
                    d.resource(v, ResourceKind::FileContents)
                }),
                contents: d
                    .field(f, "contents", |d, v| {
                        Some(d.resource(v, ResourceKind::FileContents))
                    })
                    .unwrap_or_default(),
                mode: d.opt_int(f, "mode"),
            }),
            filesystems: self.object_list(f, "filesystems", |d, f| Filesystem {
                device: d.string(f, "device"),
                format: d.opt_string(f, "format"),
                label: d.opt_string(f, "label"),
                mount_options: if d.since(V3_1_0) {
                    d.string_list(f, "mountOptions")
                } else {
                    Vec::new()
                },
                options: d.string_list(f, "options"),
                path: d.opt_string(f, "path"),
                uuid: d.opt_string(f, "uuid"),
                wipe_filesystem: d.opt_bool(f, "wipeFilesystem"),
            }),
            links: self.object_list(f, "links", |d, f| Link {
                group: d.nested(f, "group", Self::owner),
                overwrite: d.opt_bool(f, "overwrite"),
                path: d.string(f, "path"),
                user: d.nested(f, "user", Self::owner),
                hard: d.opt_bool(f, "hard"),
                target: if d.since(V3_3_0) {
                    d.opt_string(f, "target")
                } else {
                    Some(d.string(f, "target"))
                },
            }),
            luks: if self.since(V3_2_0) {
                self.object_list(f, "luks", Self::luks)
            } else {
                Vec::new()
            },
            raid: self.object_list(f, "raid", |d, f| Raid {
                devices: d.string_list(f, "devices"),
                level: if d.since(V3_3_0) {
                    d.opt_string(f, "level")
                } else {
                    Some(d.string(f, "level"))
                },
                name: d.string(f, "name"),
                options: d.string_list(f, "options"),
                spares: d.opt_int(f, "spares"),
            }),
        }
    }

    fn owner(&mut self, f: &mut Fields) -> NodeOwner {
        NodeOwner {
            id: self.opt_int(f, "id"),
            name: self.opt_string(f, "name"),
        }
    }

    fn partition(&mut self, f: &mut Fields) -> Partition {
        Partition {
            guid: self.opt_string(f, "guid"),
            label: self.opt_string(f, "label"),
            number: self.opt_int(f, "number"),
            resize: if self.since(V3_2_0) {
                self.opt_bool(f, "resize")
            } else {
                None
            },
            should_exist: self.opt_bool(f, "shouldExist"),
            size_mib: self.opt_int(f, "sizeMiB"),
            start_mib: self.opt_int(f, "startMiB"),
            type_guid: self.opt_string(f, "typeGuid"),
            wipe_partition_entry: self.opt_bool(f, "wipePartitionEntry"),
        }
    }

    fn luks(&mut self, f: &mut Fields) -> Luks {
        Luks {
            cex: if self.since(V3_5_0) {
                self.nested(f, "cex", |d, f| Cex {
                    enabled: d.opt_bool(f, "enabled"),
                })
            } else {
                Cex::default()
            },
            clevis: self.nested(f, "clevis", Self::clevis),
            device: self.opt_string(f, "device"),
            discard: if self.since(V3_4_0) {
                self.opt_bool(f, "discard")
            } else {
                None
            },
            key_file: self
                .field(f, "keyFile", |d, v| {
                    Some(d.resource(v, ResourceKind::KeyFile))
                })
                .unwrap_or_default(),
            label: self.opt_string(f, "label"),
            name: self.string(f, "name"),
            open_options: if self.since(V3_4_0) {
                self.string_list(f, "openOptions")
            } else {
                Vec::new()
            },
            options: self.string_list(f, "options"),
            uuid: self.opt_string(f, "uuid"),
            wipe_volume: self.opt_bool(f, "wipeVolume"),
        }
    }

    fn clevis(&mut self, f: &mut Fields) -> Clevis {
        Clevis {
            custom: self.field(f, "custom", |d, v| {
                Some(d.object(v, |d, f| {
                    if d.since(V3_3_0) {
                        ClevisCustom {
                            config: d.opt_string(f, "config"),
                            needs_network: d.opt_bool(f, "needsNetwork"),
                            pin: d.opt_string(f, "pin"),
                        }
                    } else {
                        ClevisCustom {
                            config: Some(d.string(f, "config")),
                            needs_network: d.opt_bool(f, "needsNetwork"),
                            pin: Some(d.string(f, "pin")),
                        }
                    }
                }))
            }),
            tang: self.object_list(f, "tang", |d, f| Tang {
                advertisement: if d.since(V3_4_0) {
                    d.opt_string(f, "advertisement")
                } else {
                    None
                },
                thumbprint: d.opt_string(f, "thumbprint"),
                url: d.string(f, "url"),
            }),
            threshold: self.opt_int(f, "threshold"),
            tpm2: self.opt_bool(f, "tpm2"),
        }
    }

    fn unit(&mut self, f: &mut Fields) -> Unit {
        Unit {
            contents: self.opt_string(f, "contents"),
            dropins: self.object_list(f, "dropins", |d, f| Dropin {
                contents: d.opt_string(f, "contents"),
                name: d.string(f, "name"),
            }),
            enabled: self.opt_bool(f, "enabled"),
            mask: self.opt_bool(f, "mask"),
            name: self.string(f, "name"),
        }
    }
}
