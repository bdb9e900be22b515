//! `EdgeConfigStore` over the local file: reload on change, keep the last good
//! file, fall back to the embedded default.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::flags::Freshness;

/// A file of its own under the temp dir, removed when the test ends.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        let name = format!("edge-config-{}.json", uuid::Uuid::new_v4().simple());
        Self(std::env::temp_dir().join(name))
    }

    /// Writes `contents` and stamps an mtime `seconds` from now, so a change is
    /// visible even on filesystems with coarse timestamps.
    fn write(&self, contents: &str, seconds: u64) {
        std::fs::write(&self.0, contents).unwrap();
        let file = std::fs::File::options().write(true).open(&self.0).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(seconds))
            .unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn the_local_file_is_reloaded_on_the_first_read_after_it_changes() {
    let file = TempFile::new();
    file.write(&items_marked("one").to_string(), 0);
    let interval = Duration::from_millis(20);
    let store = EdgeConfigStore::<Flow>::local_file(&file.0, interval);
    let snapshot = store.snapshot().await;
    assert_eq!(marker(&snapshot).as_deref(), Some("one"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);

    file.write(&items_marked("two, edited").to_string(), 10);
    // Sleeping at least the interval makes the next read check the file.
    tokio::time::sleep(interval * 2).await;
    let snapshot = store.snapshot().await;
    assert_eq!(marker(&snapshot).as_deref(), Some("two, edited"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
}

#[tokio::test]
async fn the_local_file_is_not_checked_again_within_the_interval() {
    let file = TempFile::new();
    file.write(&items_marked("one").to_string(), 0);
    let store = EdgeConfigStore::<Flow>::local_file(&file.0, Duration::from_secs(3600));
    store.snapshot().await;
    file.write(&items_marked("two").to_string(), 10);
    assert_eq!(marker(&store.snapshot().await).as_deref(), Some("one"));
}

#[tokio::test]
async fn a_broken_edit_of_the_local_file_keeps_the_last_good_config() {
    let file = TempFile::new();
    file.write(&items_marked("one").to_string(), 0);
    let store = EdgeConfigStore::<Flow>::local_file(&file.0, Duration::ZERO);
    store.snapshot().await;

    file.write("{ \"flags\": ", 10);
    let snapshot = store.snapshot().await;
    assert_eq!(marker(&snapshot).as_deref(), Some("one"));
    assert!(matches!(snapshot.freshness(), Freshness::Stale { .. }));

    file.write(&items_with_an_invalid_flow("bad").to_string(), 20);
    let snapshot = store.snapshot().await;
    assert_eq!(marker(&snapshot).as_deref(), Some("one"));
    let Freshness::Stale { reason } = snapshot.freshness() else {
        panic!("expected stale: {:?}", snapshot.freshness());
    };
    assert!(reason.contains("invalid"), "{reason}");

    file.write(&items_marked("fixed").to_string(), 30);
    let snapshot = store.snapshot().await;
    assert_eq!(marker(&snapshot).as_deref(), Some("fixed"));
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
}

#[tokio::test]
async fn a_missing_local_file_serves_the_embedded_default_marked_degraded() {
    let file = TempFile::new();
    let store = EdgeConfigStore::<Flow>::local_file(&file.0, Duration::ZERO);
    let snapshot = store.snapshot().await;
    assert!(snapshot.is_degraded());
    assert_eq!(snapshot.flow().id(), "default");
    let Freshness::Degraded { reason } = snapshot.freshness() else {
        unreachable!()
    };
    assert!(reason.contains("cannot read"), "{reason}");

    file.write(&items_marked("created").to_string(), 0);
    let snapshot = store.snapshot().await;
    assert_eq!(marker(&snapshot).as_deref(), Some("created"));
    assert!(!snapshot.is_degraded());
}

#[tokio::test]
async fn the_shipped_file_through_the_settings_is_up() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/edge-config.json");
    let store = EdgeConfigStore::<Flow>::from_settings(
        &crate::flags::EdgeConfigSource::LocalFile(path.into()),
        &crate::flags::FlagsSettings::default(),
        reqwest::Client::new(),
    );
    let snapshot = store.snapshot().await;
    assert_eq!(snapshot.freshness(), &Freshness::Fresh);
    assert!(snapshot.is_enabled("teamInvites", "anyone"));
}
