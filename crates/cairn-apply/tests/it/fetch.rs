//! Resources fetched over HTTP from a real local server, decompressed and verified.

use std::time::Duration;

use cairn_apply::fetch::{fetch, FetchError, FetchOptions};
use cairn_ignition::{HttpHeader, Resource, Verification};

use crate::common::{gzip, sha512, Site};

fn resource(source: &str) -> Resource {
    Resource {
        source: Some(source.to_owned()),
        ..Resource::default()
    }
}

#[test]
fn http_gzip_and_hashes() {
    let site = Site::new();
    let content = b"motd from the network\n".repeat(50);
    let motd = site.put("motd", &content);
    let motd_gz = site.put("motd.gz", gzip(&content));
    let options = FetchOptions {
        backoff: Duration::from_millis(10),
        retries: 1,
        ..FetchOptions::default()
    };
    let hash = sha512(&content);

    let mut plain = resource(&motd);
    plain.http_headers.push(HttpHeader {
        name: "X-Cairn".into(),
        value: Some("1".into()),
    });
    plain.verification = Verification {
        hash: Some(hash.clone()),
    };
    assert_eq!(fetch(&plain, &options).unwrap(), content);

    // The hash is over the decompressed content, as in Ignition.
    let mut compressed = resource(&motd_gz);
    compressed.compression = Some("gzip".into());
    compressed.verification = Verification {
        hash: Some(hash.clone()),
    };
    assert_eq!(fetch(&compressed, &options).unwrap(), content);

    let mut wrong = plain.clone();
    wrong.verification.hash = Some(format!("sha512-{}", "0".repeat(128)));
    match fetch(&wrong, &options) {
        Err(FetchError::HashMismatch { url, .. }) => assert!(url.ends_with("/motd")),
        other => panic!("{other:?}"),
    }
    match fetch(&resource(&site.url("missing")), &options) {
        Err(e @ FetchError::Http { .. }) => assert!(e.to_string().contains("404"), "{e}"),
        other => panic!("{other:?}"),
    }
    let small = FetchOptions {
        max_size: 100,
        ..options.clone()
    };
    assert!(matches!(
        fetch(&plain, &small),
        Err(FetchError::TooLarge { .. })
    ));
    drop(site);
    // Nothing listens any more: retried, then an error naming the URL.
    let err = fetch(&plain, &options).unwrap_err().to_string();
    assert!(err.contains("/motd"), "{err}");
    assert!(matches!(
        fetch(&resource("ftp://example.com/x"), &options),
        Err(FetchError::Scheme(_))
    ));
}
