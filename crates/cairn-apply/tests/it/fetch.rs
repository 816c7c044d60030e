//! Resources fetched over HTTP from a real local server, decompressed and verified.

use std::fs;
use std::time::Duration;

use cairn_apply::fetch::{fetch, FetchError, FetchOptions};
use cairn_ignition::{HttpHeader, Resource, Verification};
use sha2::{Digest, Sha512};

fn resource(source: &str) -> Resource {
    Resource {
        source: Some(source.to_owned()),
        ..Resource::default()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
    let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c.gzip_compress(data, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn http_gzip_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"motd from the network\n".repeat(50);
    fs::write(dir.path().join("motd"), &content).unwrap();
    fs::write(dir.path().join("motd.gz"), gzip(&content)).unwrap();
    let server =
        cairn_repo_server::spawn(dir.path().to_owned(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}/", server.addr);
    let options = FetchOptions {
        backoff: Duration::from_millis(10),
        retries: 1,
        ..FetchOptions::default()
    };
    let hash = format!("sha512-{}", hex::encode(Sha512::digest(&content)));

    let mut plain = resource(&format!("{base}motd"));
    plain.http_headers.push(HttpHeader {
        name: "X-Cairn".into(),
        value: Some("1".into()),
    });
    plain.verification = Verification {
        hash: Some(hash.clone()),
    };
    assert_eq!(fetch(&plain, &options).unwrap(), content);

    // The hash is over the decompressed content, as in Ignition.
    let mut compressed = resource(&format!("{base}motd.gz"));
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
    match fetch(&resource(&format!("{base}missing")), &options) {
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
    drop(server);
    // Nothing listens any more: retried, then an error naming the URL.
    let err = fetch(&plain, &options).unwrap_err().to_string();
    assert!(err.contains("/motd"), "{err}");
    assert!(matches!(
        fetch(&resource("ftp://example.com/x"), &options),
        Err(FetchError::Scheme(_))
    ));
}
