//! One test per validation rule, with the spec versions where it starts or stops applying.
//! Rules that ignition-validate 2.14 also checks have a file in `tests/data/invalid` too;
//! these tests add the newer specs (3.4.0+), warnings, and the edges of each rule.

use serde_json::json;

use crate::support::{assert_clean, assert_error, assert_warning, report};

fn file(file: serde_json::Value) -> serde_json::Value {
    json!({"storage": {"files": [file]}})
}

fn luks(luks: serde_json::Value) -> serde_json::Value {
    json!({"storage": {"luks": [luks]}})
}

fn unit(unit: serde_json::Value) -> serde_json::Value {
    json!({"systemd": {"units": [unit]}})
}

const SHA512: &str = "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

mod paths {
    use super::*;

    #[test]
    fn must_be_present_absolute_and_clean() {
        let cases = [
            ("", "path not specified"),
            ("etc/motd", "path not absolute"),
            ("/etc/../motd", "path is not fully simplified"),
            ("/etc/motd/", "path is not fully simplified"),
            ("/etc//motd", "path is not fully simplified"),
            ("/etc/./motd", "path is not fully simplified"),
        ];
        for (path, message) in cases {
            assert_error(
                "3.6.0",
                file(json!({"path": path})),
                "$.storage.files.0.path",
                message,
            );
        }
        assert_clean("3.6.0", file(json!({"path": "/etc/motd"})));
        assert_clean(
            "3.6.0",
            json!({"storage": {"directories": [{"path": "/"}]}}),
        );
    }

    #[test]
    fn files_directories_and_links_share_one_path_space() {
        let body = json!({"storage": {
            "directories": [{"path": "/a"}],
            "files": [{"path": "/a"}, {"path": "/b"}],
            "links": [{"path": "/b", "target": "/x"}]}});
        let report = report("3.6.0", body);
        let paths: Vec<String> = report.errors().map(|e| e.path_string()).collect();
        assert_eq!(
            paths,
            ["$.storage.files.0", "$.storage.links.0"],
            "{report}"
        );
    }

    #[test]
    fn nothing_may_be_written_through_a_link() {
        let body = json!({"storage": {
            "links": [{"path": "/l", "target": "/x"}, {"path": "/l/m", "target": "/x"}],
            "files": [{"path": "/l/f"}, {"path": "/lf"}],
            "directories": [{"path": "/l/d"}]}});
        let report = report("3.6.0", body);
        let found: Vec<String> = report.errors().map(|e| e.to_string()).collect();
        assert_eq!(
            found,
            [
                "error at $.storage.directories.0: directory path includes link in config",
                "error at $.storage.files.0: file path includes link in config",
                "error at $.storage.links.1: link path includes link in config",
            ]
        );
    }

    #[test]
    fn nodes_may_not_replace_units_written_by_systemd_section() {
        let body = json!({
            "systemd": {"units": [{"name": "a.service", "contents": "[Unit]\n",
                "dropins": [{"name": "x.conf", "contents": "[Unit]\n"}]},
                {"name": "b.service"}]},
            "storage": {
                "files": [{"path": "/etc/systemd/system/a.service"}, {"path": "/etc/systemd/system/b.service"}],
                "links": [{"path": "/etc/systemd/system/a.service.d/x.conf", "target": "/x"}]}});
        let report = report("3.0.0", body);
        let found: Vec<String> = report.errors().map(|e| e.path_string()).collect();
        assert_eq!(
            found,
            ["$.storage.files.0.path", "$.storage.links.0.path"],
            "{report}"
        );
    }
}

mod modes_and_owners {
    use super::*;

    #[test]
    fn mode_must_be_within_0_to_07777() {
        for mode in [-1, 0o10000, 65535] {
            assert_error(
                "3.6.0",
                file(json!({"path": "/f", "mode": mode})),
                "$.storage.files.0.mode",
                "illegal file mode",
            );
        }
        assert_clean("3.6.0", file(json!({"path": "/f", "mode": 0o7777})));
        assert_clean(
            "3.6.0",
            json!({"storage": {"directories": [{"path": "/d", "mode": 0}]}}),
        );
    }

    #[test]
    fn special_bits_warn_before_3_6_and_are_allowed_from_3_6() {
        for version in ["3.0.0", "3.3.0", "3.5.0"] {
            assert_warning(
                version,
                file(json!({"path": "/f", "mode": 0o4755})),
                "$.storage.files.0.mode",
                "setuid/setgid/sticky",
            );
            let body = json!({"storage": {"directories": [{"path": "/d", "mode": 0o1777}]}});
            assert_warning(
                version,
                body,
                "$.storage.directories.0.mode",
                "setuid/setgid/sticky",
            );
        }
        assert_clean("3.6.0", file(json!({"path": "/f", "mode": 0o4755})));
    }

    #[test]
    fn owner_is_an_id_or_a_name() {
        assert_error(
            "3.0.0",
            file(json!({"path": "/f", "user": {"id": 0, "name": "root"}})),
            "$.storage.files.0.user",
            "cannot set both id and name",
        );
        let body = json!({"storage": {"links": [{"path": "/l", "target": "/x", "group": {"id": 0, "name": "root"}}]}});
        assert_error(
            "3.6.0",
            body,
            "$.storage.links.0.group",
            "cannot set both id and name",
        );
        // An empty name does not count.
        assert_clean(
            "3.6.0",
            file(json!({"path": "/f", "user": {"id": 0, "name": ""}})),
        );
    }

    #[test]
    fn overwrite_needs_a_source() {
        assert_error(
            "3.6.0",
            file(json!({"path": "/f", "overwrite": true})),
            "$.storage.files.0.overwrite",
            "overwrite must be false if source is unspecified",
        );
        assert_clean(
            "3.6.0",
            file(json!({"path": "/f", "overwrite": true, "contents": {"source": "data:,"}})),
        );
        assert_clean("3.6.0", file(json!({"path": "/f", "overwrite": false})));
    }
}

mod links {
    use super::*;

    #[test]
    fn target_is_required_from_3_3() {
        let body = json!({"storage": {"links": [{"path": "/l"}]}});
        assert_error(
            "3.3.0",
            body.clone(),
            "$.storage.links.0.target",
            "link target is required",
        );
        assert_error(
            "3.6.0",
            body.clone(),
            "$.storage.links.0.target",
            "link target is required",
        );
        assert_clean("3.2.0", body);
    }

    #[test]
    fn hard_link_may_not_point_at_a_directory() {
        let absolute = json!({"storage": {"directories": [{"path": "/d"}], "links": [{"path": "/l", "target": "/d", "hard": true}]}});
        assert_error(
            "3.6.0",
            absolute,
            "$.storage.links.0",
            "hard link target is a directory",
        );
        // Ignition resolves a relative target against the link path itself.
        let relative = json!({"storage": {"directories": [{"path": "/a/d"}], "links": [{"path": "/a/l", "target": "../d", "hard": true}]}});
        assert_error(
            "3.6.0",
            relative,
            "$.storage.links.0",
            "hard link target is a directory",
        );
        let symlink = json!({"storage": {"directories": [{"path": "/d"}], "links": [{"path": "/l", "target": "/d"}]}});
        assert_clean("3.6.0", symlink);
    }

    #[test]
    fn hard_link_owner_is_ignored_with_a_warning() {
        let body = json!({"storage": {"links": [{"path": "/l", "target": "/x", "hard": true, "user": {"id": 1}, "group": {"name": "g"}}]}});
        let report = report("3.6.0", body);
        let warnings: Vec<String> = report.warnings().map(|e| e.path_string()).collect();
        assert_eq!(
            warnings,
            ["$.storage.links.0.user.id", "$.storage.links.0.group.name"]
        );
        assert!(!report.has_errors());
    }
}

mod resources {
    use super::*;

    fn contents(contents: serde_json::Value) -> serde_json::Value {
        file(json!({"path": "/f", "contents": contents}))
    }

    const AT_SOURCE: &str = "$.storage.files.0.contents.source";
    const AT_HASH: &str = "$.storage.files.0.contents.verification.hash";

    #[test]
    fn schemes_by_version() {
        let accepted = [
            ("3.0.0", "http://x/f"),
            ("3.0.0", "https://x/f"),
            ("3.0.0", "tftp://x/f"),
            ("3.0.0", "s3://bucket/f"),
            ("3.0.0", "data:,x"),
            ("3.2.0", "gs://bucket/f"),
            ("3.4.0", "arn:aws:s3:::bucket/f"),
            (
                "3.4.0",
                "arn:aws:s3:us-east-1:123456789012:accesspoint/ap/object/f",
            ),
            ("3.6.0", "HTTPS://X/f"),
        ];
        for (version, source) in accepted {
            assert_clean(version, contents(json!({"source": source})));
        }
        let refused = [
            ("3.1.0", "gs://bucket/f"),
            ("3.3.0", "arn:aws:s3:::bucket/f"),
            ("3.6.0", "ftp://x/f"),
            ("3.6.0", "file:///f"),
            ("3.6.0", "/f"),
        ];
        for (version, source) in refused {
            assert_error(
                version,
                contents(json!({"source": source})),
                AT_SOURCE,
                "invalid url scheme",
            );
        }
    }

    #[test]
    fn urls_must_parse_as_go_parses_them() {
        for source in [
            "https://x:port/f",
            "https://[::1/f",
            "https://x/%zz",
            "http://a b/",
            ":x",
        ] {
            assert_error(
                "3.6.0",
                contents(json!({"source": source})),
                AT_SOURCE,
                "unable to parse url",
            );
        }
    }

    #[test]
    fn data_urls_must_decode() {
        for (source, message) in [
            ("data:text/plain", "incomplete media type"),
            ("data:,hello world", "invalid data character"),
            ("data:;base64,aGVsbG8", "illegal base64 data"),
            ("data:foo/bar,x", "invalid media type"),
            ("data:,%2", "unexpected end"),
            ("data:x,y", "missing media type slash"),
        ] {
            assert_error(
                "3.6.0",
                contents(json!({"source": source})),
                AT_SOURCE,
                message,
            );
        }
    }

    #[test]
    fn s3_version_id_and_arn_shape() {
        assert_error(
            "3.6.0",
            contents(json!({"source": "s3://b/k?versionId="})),
            AT_SOURCE,
            "invalid S3 object VersionId",
        );
        assert_clean(
            "3.6.0",
            contents(json!({"source": "s3://b/k?versionId=v1"})),
        );
        for arn in [
            "arn:aws:s3:::bucket",
            "arn:aws:sqs:::bucket/k",
            "arn:aws:s3",
            "arn:aws:s3:::accesspoint/x",
        ] {
            assert_error(
                "3.6.0",
                contents(json!({"source": arn})),
                AT_SOURCE,
                "invalid S3 ARN format",
            );
        }
        assert_error(
            "3.6.0",
            contents(json!({"source": "arn::s3:::b/k"})),
            AT_SOURCE,
            "arn: invalid partition",
        );
        assert_error(
            "3.6.0",
            contents(json!({"source": "arn:aws:s3:::b/k?versionId="})),
            AT_SOURCE,
            "invalid S3 object VersionId",
        );
    }

    #[test]
    fn hashes() {
        let sha256 = format!("sha256-{}", "a".repeat(64));
        assert_clean(
            "3.1.0",
            contents(json!({"source": "data:,", "verification": {"hash": sha256}})),
        );
        assert_error(
            "3.0.0",
            contents(json!({"source": "data:,", "verification": {"hash": sha256}})),
            AT_HASH,
            "unrecognized hash function",
        );
        assert_error(
            "3.6.0",
            contents(json!({"source": "data:,", "verification": {"hash": "md5-abc"}})),
            AT_HASH,
            "unrecognized hash function",
        );
        assert_error(
            "3.6.0",
            contents(json!({"source": "data:,", "verification": {"hash": "sha512"}})),
            AT_HASH,
            "malformed hash specifier",
        );
        assert_error(
            "3.6.0",
            contents(json!({"source": "data:,", "verification": {"hash": "sha512-abc"}})),
            AT_HASH,
            "incorrect size for hash sum",
        );
        assert_error(
            "3.6.0",
            contents(json!({"verification": {"hash": SHA512}})),
            AT_HASH,
            "source must be specified if verification is specified",
        );
    }

    #[test]
    fn compression_is_gzip_or_nothing() {
        assert_error(
            "3.6.0",
            contents(json!({"source": "data:,", "compression": "xz"})),
            "$.storage.files.0.contents.compression",
            "invalid compression method",
        );
        assert_clean(
            "3.6.0",
            contents(json!({"source": "data:,", "compression": "gzip"})),
        );
        assert_clean(
            "3.6.0",
            contents(json!({"source": "data:,", "compression": ""})),
        );
    }

    #[test]
    fn http_headers() {
        let at = "$.storage.files.0.contents.httpHeaders";
        assert_error(
            "3.6.0",
            contents(json!({"source": "data:,", "httpHeaders": [{"name": "A", "value": "b"}]})),
            at,
            "cannot use HTTP headers with this source scheme",
        );
        assert_error(
            "3.6.0",
            contents(json!({"httpHeaders": [{"name": "A", "value": "b"}]})),
            at,
            "unable to parse url",
        );
        assert_error(
            "3.6.0",
            contents(json!({"source": "https://x/", "httpHeaders": [{"name": "", "value": "b"}]})),
            &format!("{at}.0.name"),
            "HTTP header name can't be empty",
        );
        assert_error(
            "3.6.0",
            contents(json!({"source": "https://x/", "httpHeaders": [{"name": "A", "value": ""}]})),
            &format!("{at}.0.value"),
            "unable to parse HTTP header",
        );
        assert_error(
            "3.6.0",
            contents(
                json!({"source": "https://x/", "httpHeaders": [{"name": "A"}, {"name": "A"}]}),
            ),
            &format!("{at}.1"),
            "duplicate entry defined",
        );
    }

    #[test]
    fn append_entries_are_resources_and_may_repeat() {
        let body = file(json!({"path": "/f", "append": [{"source": "ftp://x"}]}));
        assert_error(
            "3.6.0",
            body,
            "$.storage.files.0.append.0.source",
            "invalid url scheme",
        );
        let body =
            file(json!({"path": "/f", "append": [{"source": "data:,a"}, {"source": "data:,a"}]}));
        assert_clean("3.6.0", body);
    }
}

mod ignition_section {
    use super::*;

    #[test]
    fn merged_configs_need_a_source_from_3_1() {
        let body = json!({"ignition": {"config": {"merge": [{"verification": {}}]}}});
        assert_error(
            "3.1.0",
            body.clone(),
            "$.ignition.config.merge.0",
            "source is required",
        );
        assert_clean("3.0.0", body);
        let body = json!({"ignition": {"config": {"merge": [{"source": "ftp://x"}]}}});
        assert_error(
            "3.6.0",
            body.clone(),
            "$.ignition.config.merge.0",
            "invalid url scheme",
        );
        assert_error(
            "3.6.0",
            body,
            "$.ignition.config.merge.0.source",
            "invalid url scheme",
        );
    }

    #[test]
    fn merged_configs_and_authorities_are_unique_by_source() {
        let body = json!({"ignition": {"config": {"merge": [{"source": "data:,"}, {"source": "data:,"}]}}});
        assert_error(
            "3.6.0",
            body,
            "$.ignition.config.merge.1",
            "duplicate entry defined",
        );
        let body = json!({"ignition": {"security": {"tls": {"certificateAuthorities": [{"source": "data:,"}, {"source": "data:,"}]}}}});
        assert_error(
            "3.6.0",
            body,
            "$.ignition.security.tls.certificateAuthorities.1",
            "duplicate entry defined",
        );
    }

    #[test]
    fn references_of_3_0_may_carry_a_hash_without_source() {
        let body = json!({"ignition": {"config": {"merge": [{"verification": {"hash": SHA512}}]}}});
        assert_clean("3.0.0", body.clone());
        assert_error(
            "3.1.0",
            body,
            "$.ignition.config.merge.0.verification.hash",
            "source must be specified",
        );
    }

    #[test]
    fn certificate_authorities_need_a_source() {
        let body = json!({"ignition": {"security": {"tls": {"certificateAuthorities": [{}]}}}});
        assert_error(
            "3.0.0",
            body.clone(),
            "$.ignition.security.tls.certificateAuthorities.0.source",
            "invalid url scheme",
        );
        assert_error(
            "3.6.0",
            body,
            "$.ignition.security.tls.certificateAuthorities.0",
            "source is required",
        );
        // One error for a bad 3.0.0 source, as Ignition reports it.
        let body = json!({"ignition": {"security": {"tls": {"certificateAuthorities": [{"source": "ftp://x"}]}}}});
        assert_eq!(report("3.0.0", body).errors().count(), 1);
    }

    #[test]
    fn replace_is_checked_like_any_resource() {
        let body = json!({"ignition": {"config": {"replace": {"source": "data:,", "compression": "bz2"}}}});
        assert_error(
            "3.6.0",
            body,
            "$.ignition.config.replace.compression",
            "invalid compression method",
        );
        assert_clean("3.6.0", json!({"ignition": {"config": {"replace": {}}}}));
    }

    #[test]
    fn proxies() {
        let at = "$.ignition.proxy";
        assert_error(
            "3.1.0",
            json!({"ignition": {"proxy": {"httpProxy": "socks5://p"}}}),
            &format!("{at}.httpProxy"),
            "proxies must be http(s)",
        );
        assert_error(
            "3.6.0",
            json!({"ignition": {"proxy": {"httpsProxy": "http://p:x"}}}),
            &format!("{at}.httpsProxy"),
            "unable to parse url",
        );
        assert_warning(
            "3.6.0",
            json!({"ignition": {"proxy": {"httpsProxy": "http://p"}}}),
            &format!("{at}.httpsProxy"),
            "insecure plaintext HTTP proxy",
        );
        assert_clean(
            "3.6.0",
            json!({"ignition": {"proxy": {"httpProxy": "http://p", "httpsProxy": "https://p"}}}),
        );
        assert_error(
            "3.6.0",
            json!({"ignition": {"proxy": {"noProxy": ["a", "a"]}}}),
            &format!("{at}.noProxy.1"),
            "duplicate entry defined",
        );
    }

    #[test]
    fn negative_timeouts_warn() {
        let body = json!({"ignition": {"timeouts": {"httpTotal": -1, "httpResponseHeaders": 0}}});
        assert_warning(
            "3.6.0",
            body,
            "$.ignition.timeouts.httpTotal",
            "negative timeout",
        );
    }
}

mod systemd {
    use super::*;

    #[test]
    fn unit_names_need_a_unit_suffix() {
        for name in [
            "a.service",
            "a.socket",
            "a.device",
            "a.mount",
            "a.automount",
            "a.swap",
            "a.target",
            "a.path",
            "a.timer",
            "a.snapshot",
            "a.slice",
            "a.scope",
        ] {
            assert_clean("3.6.0", unit(json!({"name": name})));
        }
        for name in ["a", "a.conf", "a.service/x", ""] {
            assert_error(
                "3.6.0",
                unit(json!({"name": name})),
                "$.systemd.units.0.name",
                "invalid systemd unit extension",
            );
        }
    }

    #[test]
    fn dropin_names_end_in_conf() {
        let body = unit(json!({"name": "a.service", "dropins": [{"name": "x.cfg"}]}));
        assert_error(
            "3.6.0",
            body,
            "$.systemd.units.0.dropins.0.name",
            "invalid systemd drop-in extension",
        );
    }

    #[test]
    fn units_and_dropins_are_unique_by_name() {
        let body = json!({"systemd": {"units": [{"name": "a.service"}, {"name": "a.service"}]}});
        assert_error(
            "3.6.0",
            body,
            "$.systemd.units.1",
            "duplicate entry defined",
        );
        let body =
            unit(json!({"name": "a.service", "dropins": [{"name": "x.conf"}, {"name": "x.conf"}]}));
        assert_error(
            "3.6.0",
            body,
            "$.systemd.units.0.dropins.1",
            "duplicate entry defined",
        );
    }

    #[test]
    fn unit_contents_must_be_unit_syntax() {
        for (contents, message) in [
            ("[Unit", "unable to find end of section"),
            ("[Unit] x", "found garbage after section name"),
            (
                "[Unit]\nDescription\n",
                "unexpected newline encountered while parsing option name",
            ),
            ("[Unit]\nDescription", "invalid unit content: EOF"),
        ] {
            assert_error(
                "3.6.0",
                unit(json!({"name": "a.service", "contents": contents})),
                "$.systemd.units.0.contents",
                message,
            );
        }
        // A section name may run over lines; the message still prints as one line.
        let report = report(
            "3.6.0",
            unit(json!({"name": "a.service", "contents": "[Un\nit] x\n"})),
        );
        assert_eq!(report.to_string().lines().count(), 1, "{report}");
        let long = format!("[Unit]\nDescription={}\n", "x".repeat(2048));
        assert_error(
            "3.6.0",
            unit(json!({"name": "a.service", "contents": long})),
            "$.systemd.units.0.contents",
            "line too long",
        );
        let body = unit(
            json!({"name": "a.service", "dropins": [{"name": "x.conf", "contents": "[Service"}]}),
        );
        assert_error(
            "3.6.0",
            body,
            "$.systemd.units.0.dropins.0.contents",
            "unable to find end of section",
        );
        assert_clean(
            "3.6.0",
            unit(
                json!({"name": "a.service", "contents": "# c\n[Unit]\nA=1 \\\n 2\n[Install]\nWantedBy=x\n"}),
            ),
        );
    }

    #[test]
    fn enabled_units_need_an_install_section() {
        let body = unit(
            json!({"name": "a.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n"}),
        );
        assert_warning(
            "3.6.0",
            body,
            "$.systemd.units.0.contents",
            "is enabled, but has no install section",
        );
        // Without contents the unit on disk decides; disabled units do not care.
        assert_clean("3.6.0", unit(json!({"name": "a.service", "enabled": true})));
        assert_clean(
            "3.6.0",
            unit(json!({"name": "a.service", "enabled": false, "contents": "[Service]\n"})),
        );
    }

    #[test]
    fn enabled_instances_need_an_install_section_in_their_template() {
        let body = json!({"systemd": {"units": [
            {"name": "getty@.service", "contents": "[Service]\nExecStart=/sbin/agetty\n"},
            {"name": "getty@tty1.service", "enabled": true}]}});
        assert_warning("3.6.0", body, "$.systemd.units.1.contents", "template unit \"getty@.service\" for \"getty@tty1.service\" doesn't have Install section");
    }

    #[test]
    fn masked_units_with_contents_or_enabled_warn() {
        let body = unit(json!({"name": "a.service", "mask": true, "contents": "[Unit]\n"}));
        assert_warning("3.6.0", body, "$.systemd.units.0.contents", "masked");
        let body = unit(json!({"name": "a.service", "mask": true, "enabled": true}));
        assert_warning(
            "3.6.0",
            body,
            "$.systemd.units.0.enabled",
            "masked and enabled",
        );
        assert_clean("3.6.0", unit(json!({"name": "a.service", "mask": true})));
    }
}

mod passwd {
    use super::*;

    #[test]
    fn users_groups_and_their_lists_are_unique() {
        assert_error(
            "3.6.0",
            json!({"passwd": {"users": [{"name": "a"}, {"name": "a"}]}}),
            "$.passwd.users.1",
            "duplicate entry defined",
        );
        assert_error(
            "3.6.0",
            json!({"passwd": {"groups": [{"name": "a"}, {"name": "a"}]}}),
            "$.passwd.groups.1",
            "duplicate entry defined",
        );
        assert_error(
            "3.6.0",
            json!({"passwd": {"users": [{"name": "a", "groups": ["w", "w"]}]}}),
            "$.passwd.users.0.groups.1",
            "duplicate entry defined",
        );
        assert_error(
            "3.6.0",
            json!({"passwd": {"users": [{"name": "a", "sshAuthorizedKeys": ["k", "k"]}]}}),
            "$.passwd.users.0.sshAuthorizedKeys.1",
            "duplicate entry defined",
        );
    }

    #[test]
    fn relative_home_directory_warns() {
        let body = json!({"passwd": {"users": [{"name": "a", "homeDir": "home/a"}]}});
        assert_warning(
            "3.6.0",
            body,
            "$.passwd.users.0.homeDir",
            "not an absolute path",
        );
        assert_clean(
            "3.6.0",
            json!({"passwd": {"users": [{"name": "a", "homeDir": "/home/a"}]}}),
        );
    }
}

mod kernel_arguments {
    use super::*;

    #[test]
    fn an_argument_is_wanted_or_unwanted_once() {
        let body = json!({"kernelArguments": {"shouldExist": ["a"], "shouldNotExist": ["a"]}});
        assert_error(
            "3.3.0",
            body,
            "$.kernelArguments.shouldNotExist.0",
            "duplicate entry defined",
        );
        let body = json!({"kernelArguments": {"shouldNotExist": ["b", "b"]}});
        assert_error(
            "3.6.0",
            body,
            "$.kernelArguments.shouldNotExist.1",
            "duplicate entry defined",
        );
        assert_clean(
            "3.6.0",
            json!({"kernelArguments": {"shouldExist": ["a"], "shouldNotExist": ["b"]}}),
        );
    }
}

mod disks {
    use super::*;

    fn partitions(partitions: serde_json::Value) -> serde_json::Value {
        json!({"storage": {"disks": [{"device": "/dev/sda", "partitions": partitions}]}})
    }

    const AT: &str = "$.storage.disks.0.partitions";

    #[test]
    fn device_is_required_absolute_and_unique() {
        assert_error(
            "3.6.0",
            json!({"storage": {"disks": [{}]}}),
            "$.storage.disks.0.device",
            "disk device is required",
        );
        assert_error(
            "3.6.0",
            json!({"storage": {"disks": [{"device": "sda"}]}}),
            "$.storage.disks.0.device",
            "path not absolute",
        );
        assert_error(
            "3.6.0",
            json!({"storage": {"disks": [{"device": "/dev/sda"}, {"device": "/dev/sda"}]}}),
            "$.storage.disks.1",
            "duplicate entry defined",
        );
    }

    #[test]
    fn partition_numbers_and_labels_are_unique() {
        assert_error(
            "3.6.0",
            partitions(json!([{"number": 1}, {"number": 2}, {"number": 1}])),
            &format!("{AT}.2"),
            "partition numbers collide",
        );
        assert_error(
            "3.6.0",
            partitions(json!([{"number": 1}, {"number": 1}])),
            &format!("{AT}.1"),
            "duplicate entry defined",
        );
        assert_error(
            "3.6.0",
            partitions(json!([{"label": "a"}, {"number": 2, "label": "a"}])),
            &format!("{AT}.1"),
            "cannot use the same partition label twice",
        );
        // Number 0 means "next free", which may repeat.
        assert_clean(
            "3.6.0",
            partitions(json!([{"number": 0, "label": "a"}, {"number": 0, "label": "b"}])),
        );
    }

    #[test]
    fn partition_needs_a_number_or_a_label() {
        assert_error(
            "3.6.0",
            partitions(json!([{"number": 0, "sizeMiB": 10}])),
            &format!("{AT}.0"),
            "a partition number >= 1 or a label must be specified",
        );
    }

    #[test]
    fn partition_labels() {
        assert_error(
            "3.6.0",
            partitions(json!([{"label": "x".repeat(37)}])),
            &format!("{AT}.0.label"),
            "may not exceed 36 characters",
        );
        assert_clean("3.6.0", partitions(json!([{"label": "x".repeat(36)}])));
        assert_error(
            "3.6.0",
            partitions(json!([{"label": "a:b"}])),
            &format!("{AT}.0.label"),
            "truncated to text before the colon",
        );
    }

    #[test]
    fn partition_guids() {
        assert_error(
            "3.6.0",
            partitions(json!([{"number": 1, "typeGuid": "linux"}])),
            &format!("{AT}.0.typeGuid"),
            "doesn't match the form",
        );
        assert_error(
            "3.6.0",
            partitions(json!([{"number": 1, "guid": "0FC63DAF-8483-4772-8E79-3D69D8477DEZ"}])),
            &format!("{AT}.0.guid"),
            "doesn't match the form",
        );
        assert_clean(
            "3.6.0",
            partitions(
                json!([{"number": 1, "guid": "0fc63daf-8483-4772-8e79-3d69d8477de4", "typeGuid": ""}]),
            ),
        );
    }

    #[test]
    fn partition_that_should_not_exist_has_nothing_else() {
        for other in [
            json!({"label": "a"}),
            json!({"sizeMiB": 1}),
            json!({"startMiB": 1}),
            json!({"typeGuid": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}),
        ] {
            let mut partition = json!({"number": 3, "shouldExist": false});
            partition
                .as_object_mut()
                .unwrap()
                .extend(other.as_object().unwrap().clone());
            assert_error(
                "3.6.0",
                partitions(json!([partition])),
                &format!("{AT}.0"),
                "shouldExist specified false with other options",
            );
        }
        assert_clean(
            "3.6.0",
            partitions(json!([{"number": 3, "shouldExist": false, "wipePartitionEntry": true}])),
        );
    }

    #[test]
    fn placed_partitions_may_not_overlap() {
        assert_error(
            "3.6.0",
            partitions(
                json!([{"number": 1, "startMiB": 10, "sizeMiB": 10}, {"number": 2, "startMiB": 19, "sizeMiB": 5}]),
            ),
            &format!("{AT}.1"),
            "partitions overlap",
        );
        assert_error(
            "3.6.0",
            partitions(
                json!([{"number": 1, "startMiB": 5, "sizeMiB": 100}, {"number": 2, "startMiB": 10, "sizeMiB": 1}]),
            ),
            &format!("{AT}.1"),
            "partitions overlap",
        );
        // Two identical entries overlap each other too.
        let same = json!({"number": 1, "startMiB": 10, "sizeMiB": 10});
        assert_error(
            "3.6.0",
            partitions(json!([same.clone(), same])),
            &format!("{AT}.1"),
            "partitions overlap",
        );
        // Adjacent, unplaced (start 0) and unsized partitions are not compared.
        assert_clean(
            "3.6.0",
            partitions(
                json!([{"number": 1, "startMiB": 10, "sizeMiB": 10}, {"number": 2, "startMiB": 20, "sizeMiB": 10}, {"number": 3, "startMiB": 0, "sizeMiB": 10}, {"number": 4, "startMiB": 12}]),
            ),
        );
    }
}

mod raid {
    use super::*;

    fn raid(raid: serde_json::Value) -> serde_json::Value {
        json!({"storage": {"raid": [raid]}})
    }

    #[test]
    fn levels() {
        for level in [
            "linear", "raid0", "0", "stripe", "raid1", "1", "mirror", "raid4", "4", "raid5", "5",
            "raid6", "6", "raid10", "10",
        ] {
            assert_clean(
                "3.6.0",
                raid(json!({"name": "md", "level": level, "devices": ["/dev/a"]})),
            );
        }
        assert_error(
            "3.6.0",
            raid(json!({"name": "md", "level": "raid7", "devices": ["/dev/a"]})),
            "$.storage.raid.0.level",
            "unrecognized raid level",
        );
        assert_error(
            "3.3.0",
            raid(json!({"name": "md", "devices": ["/dev/a"]})),
            "$.storage.raid.0.level",
            "raid level is required",
        );
        assert_error(
            "3.2.0",
            raid(json!({"name": "md", "devices": ["/dev/a"]})),
            "$.storage.raid.0.level",
            "unrecognized raid level",
        );
    }

    #[test]
    fn spares_only_where_the_level_has_redundancy() {
        for level in ["linear", "raid0", "0", "stripe"] {
            assert_error(
                "3.6.0",
                raid(json!({"name": "md", "level": level, "spares": 1, "devices": ["/dev/a"]})),
                "$.storage.raid.0.level",
                "spares unsupported",
            );
        }
        assert_clean(
            "3.6.0",
            raid(json!({"name": "md", "level": "raid0", "spares": 0, "devices": ["/dev/a"]})),
        );
        assert_clean(
            "3.6.0",
            raid(json!({"name": "md", "level": "raid5", "spares": 2, "devices": ["/dev/a"]})),
        );
    }

    #[test]
    fn devices_are_required_absolute_and_unique() {
        assert_error(
            "3.6.0",
            raid(json!({"name": "md", "level": "raid1"})),
            "$.storage.raid.0.devices",
            "raid devices required",
        );
        assert_error(
            "3.6.0",
            raid(json!({"name": "md", "level": "raid1", "devices": ["/dev/a", "b"]})),
            "$.storage.raid.0.devices.1",
            "path not absolute",
        );
        assert_error(
            "3.6.0",
            raid(json!({"name": "md", "level": "raid1", "devices": ["/dev/a", "/dev/a"]})),
            "$.storage.raid.0.devices.1",
            "duplicate entry defined",
        );
        let body = json!({"storage": {"raid": [{"name": "md", "level": "raid1", "devices": ["/dev/a"]}, {"name": "md", "level": "raid1", "devices": ["/dev/b"]}]}});
        assert_error("3.6.0", body, "$.storage.raid.1", "duplicate entry defined");
    }
}

mod filesystems {
    use super::*;

    fn filesystem(filesystem: serde_json::Value) -> serde_json::Value {
        json!({"storage": {"filesystems": [filesystem]}})
    }

    const AT: &str = "$.storage.filesystems.0";

    #[test]
    fn formats_by_version() {
        for format in ["ext4", "btrfs", "xfs", "vfat", "swap"] {
            assert_clean(
                "3.0.0",
                filesystem(json!({"device": "/dev/a", "format": format})),
            );
        }
        assert_error(
            "3.2.0",
            filesystem(json!({"device": "/dev/a", "format": "none"})),
            &format!("{AT}.format"),
            "invalid filesystem format",
        );
        assert_clean(
            "3.3.0",
            filesystem(json!({"device": "/dev/a", "format": "none"})),
        );
        assert_error(
            "3.6.0",
            filesystem(json!({"device": "/dev/a", "format": "ntfs"})),
            &format!("{AT}.format"),
            "invalid filesystem format",
        );
        assert_error(
            "3.6.0",
            filesystem(json!({"device": "/dev/a", "format": "virtiofs"})),
            &format!("{AT}.format"),
            "invalid filesystem format",
        );
    }

    #[test]
    fn format_is_needed_for_everything_else() {
        for other in [
            json!({"path": "/var"}),
            json!({"label": "l"}),
            json!({"uuid": "u"}),
            json!({"wipeFilesystem": true}),
            json!({"options": ["-f"]}),
            json!({"mountOptions": ["ro"]}),
        ] {
            let mut fs = json!({"device": "/dev/a"});
            fs.as_object_mut()
                .unwrap()
                .extend(other.as_object().unwrap().clone());
            assert_error(
                "3.6.0",
                filesystem(fs),
                &format!("{AT}.format"),
                "format cannot be empty",
            );
        }
        assert_error(
            "3.6.0",
            filesystem(json!({"device": "/dev/a", "label": "l"})),
            &format!("{AT}.label"),
            "must specify format if label is specified",
        );
        assert_clean(
            "3.6.0",
            filesystem(json!({"device": "/dev/a", "format": "", "path": ""})),
        );
    }

    #[test]
    fn label_lengths_per_format() {
        for (format, max) in [
            ("ext4", 16),
            ("btrfs", 256),
            ("xfs", 12),
            ("swap", 15),
            ("vfat", 11),
        ] {
            assert_clean(
                "3.6.0",
                filesystem(json!({"device": "/dev/a", "format": format, "label": "x".repeat(max)})),
            );
            let too_long = filesystem(
                json!({"device": "/dev/a", "format": format, "label": "x".repeat(max + 1)}),
            );
            assert_error(
                "3.6.0",
                too_long,
                &format!("{AT}.label"),
                &format!("cannot be longer than {max} characters when using {format}"),
            );
        }
    }

    #[test]
    fn device_and_path() {
        assert_error(
            "3.6.0",
            filesystem(json!({"format": "ext4"})),
            &format!("{AT}.device"),
            "path not specified",
        );
        assert_error(
            "3.6.0",
            filesystem(json!({"device": "/dev/a", "format": "ext4", "path": "var"})),
            &format!("{AT}.path"),
            "path not absolute",
        );
        let body = json!({"storage": {"filesystems": [{"device": "/dev/a", "format": "ext4"}, {"device": "/dev/a", "format": "xfs"}]}});
        assert_error(
            "3.6.0",
            body,
            "$.storage.filesystems.1",
            "duplicate entry defined",
        );
    }

    #[test]
    fn filesystem_on_a_disk_with_partitions_or_wiped_table_warns() {
        let body = json!({"storage": {"disks": [{"device": "/dev/a", "partitions": [{"number": 1}]}], "filesystems": [{"device": "/dev/a", "format": "ext4"}]}});
        assert_warning(
            "3.6.0",
            body,
            &format!("{AT}.device"),
            "filesystem overwrites partitioned device",
        );
        let body = json!({"storage": {"disks": [{"device": "/dev/a", "wipeTable": true}], "filesystems": [{"device": "/dev/a", "format": "ext4"}]}});
        assert_warning(
            "3.6.0",
            body,
            &format!("{AT}.device"),
            "filesystem will be wiped",
        );
        let body = json!({"storage": {"disks": [{"device": "/dev/a", "wipeTable": true}], "filesystems": [{"device": "/dev/a", "format": "ext4", "wipeFilesystem": true}]}});
        assert_clean("3.6.0", body);
    }

    #[test]
    fn virtiofs_in_3_7_experimental() {
        assert_clean(
            "3.7.0-experimental",
            filesystem(json!({"device": "myfs", "format": "virtiofs", "path": "/srv"})),
        );
        let tag = "x".repeat(37);
        assert_error(
            "3.7.0-experimental",
            filesystem(json!({"device": tag, "format": "virtiofs"})),
            &format!("{AT}.device"),
            "virtiofs device tag cannot be longer than 36 bytes",
        );
        assert_error(
            "3.7.0-experimental",
            filesystem(json!({"device": "t", "format": "virtiofs", "label": "l"})),
            &format!("{AT}.label"),
            "labels cannot be set when using virtiofs",
        );
        assert_error(
            "3.7.0-experimental",
            filesystem(json!({"device": "t", "format": "virtiofs", "options": ["-x"]})),
            &format!("{AT}.options"),
            "options (mkfs) cannot be set",
        );
        assert_error(
            "3.7.0-experimental",
            filesystem(json!({"device": "t", "format": "virtiofs", "uuid": "u"})),
            &format!("{AT}.uuid"),
            "uuid cannot be set",
        );
        assert_error(
            "3.7.0-experimental",
            filesystem(json!({"device": "t", "format": "virtiofs", "wipeFilesystem": true})),
            &format!("{AT}.wipeFilesystem"),
            "wipeFilesystem cannot be set",
        );
    }
}

mod luks_volumes {
    use super::*;

    const AT: &str = "$.storage.luks.0";

    #[test]
    fn name_label_device() {
        assert_error(
            "3.2.0",
            luks(json!({"name": "a/b", "device": "/dev/a"})),
            &format!("{AT}.name"),
            "device names cannot contain slashes",
        );
        assert_error(
            "3.6.0",
            luks(json!({"name": "a", "device": "/dev/a", "label": "x".repeat(48)})),
            &format!("{AT}.label"),
            "cannot be longer than 47 characters",
        );
        assert_clean(
            "3.6.0",
            luks(json!({"name": "a", "device": "/dev/a", "label": "x".repeat(47)})),
        );
        assert_error(
            "3.6.0",
            luks(json!({"name": "a"})),
            &format!("{AT}.device"),
            "disk device is required",
        );
        assert_error(
            "3.6.0",
            luks(json!({"name": "a", "device": "dev/a"})),
            &format!("{AT}.device"),
            "path not absolute",
        );
        let body = json!({"storage": {"luks": [{"name": "a", "device": "/dev/a"}, {"name": "a", "device": "/dev/b"}]}});
        assert_error("3.6.0", body, "$.storage.luks.1", "duplicate entry defined");
    }

    #[test]
    fn luks_is_unknown_before_3_2() {
        let report = report("3.1.0", luks(json!({"name": "a/b"})));
        assert!(!report.has_errors(), "{report}");
        assert_eq!(
            report.warnings().next().map(|w| w.to_string()).as_deref(),
            Some("warning at $.storage.luks: unused key luks")
        );
    }

    #[test]
    fn key_file_source_must_be_valid() {
        let body = luks(json!({"name": "a", "device": "/dev/a", "keyFile": {"source": "ftp://x"}}));
        assert_error(
            "3.6.0",
            body.clone(),
            &format!("{AT}.keyFile"),
            "invalid key-file source",
        );
        assert_error(
            "3.6.0",
            body,
            &format!("{AT}.keyFile.source"),
            "invalid url scheme",
        );
    }

    #[test]
    fn custom_clevis_stands_alone() {
        let custom = json!({"pin": "tpm2", "config": "{}"});
        for others in [
            json!({"tpm2": true}),
            json!({"threshold": 2}),
            json!({"tang": [{"url": "http://t", "thumbprint": "x"}]}),
        ] {
            let mut clevis = others.clone();
            clevis["custom"] = custom.clone();
            assert_error(
                "3.6.0",
                luks(json!({"name": "a", "device": "/dev/a", "clevis": clevis})),
                &format!("{AT}.clevis"),
                "cannot use custom clevis config with tpm2, tang, or threshold",
            );
        }
        // In 3.2.0 the mere presence of `custom` counts.
        let clevis = json!({"tpm2": true, "custom": {}});
        assert_error(
            "3.2.0",
            luks(json!({"name": "a", "device": "/dev/a", "clevis": clevis.clone()})),
            &format!("{AT}.clevis"),
            "cannot use custom clevis config",
        );
        assert_clean(
            "3.3.0",
            luks(json!({"name": "a", "device": "/dev/a", "clevis": clevis})),
        );
    }

    #[test]
    fn custom_clevis_pin_and_config() {
        let at = format!("{AT}.clevis.custom");
        let with = |custom: serde_json::Value| {
            luks(json!({"name": "a", "device": "/dev/a", "clevis": {"custom": custom}}))
        };
        assert_error(
            "3.5.0",
            with(json!({"pin": "yubikey", "config": "{}"})),
            &format!("{at}.pin"),
            "unsupported clevis pin",
        );
        assert_clean("3.6.0", with(json!({"pin": "yubikey", "config": "{}"})));
        assert_error(
            "3.3.0",
            with(json!({"config": "{}"})),
            &format!("{at}.pin"),
            "missing required custom clevis pin",
        );
        assert_error(
            "3.2.0",
            with(json!({"config": "{}"})),
            &format!("{at}.pin"),
            "unsupported clevis pin",
        );
        assert_error(
            "3.6.0",
            with(json!({"needsNetwork": true})),
            &format!("{at}.pin"),
            "missing required custom clevis pin",
        );
        assert_error(
            "3.6.0",
            with(json!({"pin": "sss"})),
            &format!("{at}.config"),
            "missing required custom clevis config",
        );
        assert_clean("3.6.0", with(json!({})));
    }

    #[test]
    fn tang_servers() {
        let at = format!("{AT}.clevis.tang");
        let with = |tang: serde_json::Value| {
            luks(json!({"name": "a", "device": "/dev/a", "clevis": {"tang": tang}}))
        };
        assert_error(
            "3.6.0",
            with(json!([{"url": "https://t"}])),
            &format!("{at}.0.thumbprint"),
            "thumbprint is required",
        );
        assert_error(
            "3.6.0",
            with(json!([{"url": "tcp://t", "thumbprint": "x"}])),
            &format!("{at}.0.url"),
            "invalid url scheme",
        );
        assert_error(
            "3.6.0",
            with(json!([{"url": "http://t:x", "thumbprint": "x"}])),
            &format!("{at}.0.url"),
            "unable to parse url",
        );
        assert_error(
            "3.6.0",
            with(
                json!([{"url": "http://t", "thumbprint": "x"}, {"url": "http://t", "thumbprint": "y"}]),
            ),
            &format!("{at}.1"),
            "duplicate entry defined",
        );
        assert_error(
            "3.4.0",
            with(json!([{"url": "http://t", "thumbprint": "x", "advertisement": "{not json"}])),
            &format!("{at}.0.advertisement"),
            "advertisement is not valid JSON",
        );
        assert_clean(
            "3.4.0",
            with(
                json!([{"url": "http://t", "thumbprint": "x", "advertisement": "{\"payload\": \"x\"}"}]),
            ),
        );
    }

    #[test]
    fn open_options_are_unique_and_discard_is_known_from_3_4() {
        let body = luks(
            json!({"name": "a", "device": "/dev/a", "discard": true, "openOptions": ["--x", "--x"]}),
        );
        assert_error(
            "3.4.0",
            body,
            &format!("{AT}.openOptions.1"),
            "duplicate entry defined",
        );
        let report = report(
            "3.3.0",
            luks(json!({"name": "a", "device": "/dev/a", "discard": true})),
        );
        assert_eq!(
            report.to_string(),
            "warning at $.storage.luks.0.discard: unused key discard\n"
        );
    }

    #[test]
    fn cex_excludes_clevis_and_key_files_from_3_5() {
        let body = luks(
            json!({"name": "a", "device": "/dev/a", "cex": {"enabled": true}, "clevis": {"tpm2": true}}),
        );
        assert_error(
            "3.5.0",
            body,
            &format!("{AT}.cex"),
            "cannot use cex with clevis",
        );
        let body = luks(
            json!({"name": "a", "device": "/dev/a", "cex": {"enabled": true}, "keyFile": {"source": "data:,k"}}),
        );
        assert_error(
            "3.6.0",
            body,
            &format!("{AT}.cex"),
            "cannot use key file with cex",
        );
        assert_clean(
            "3.5.0",
            luks(json!({"name": "a", "device": "/dev/a", "cex": {"enabled": true}})),
        );
        assert_clean(
            "3.5.0",
            luks(
                json!({"name": "a", "device": "/dev/a", "cex": {"enabled": false}, "clevis": {"tpm2": true}}),
            ),
        );
    }
}
