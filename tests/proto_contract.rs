//! The wire contract in `proto/concord.proto` compiles with a pure-Rust
//! protobuf compiler, and its field numbers do not change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use prost_types::FileDescriptorProto;

fn compiled() -> FileDescriptorProto {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let set =
        protox::compile(["concord.proto"], [proto_dir]).expect("proto/concord.proto compiles");
    set.file
        .into_iter()
        .find(|f| f.name() == "concord.proto")
        .expect("concord.proto in the descriptor set")
}

/// `message name -> field name -> number` for every message of the file.
fn field_numbers(file: &FileDescriptorProto) -> BTreeMap<String, BTreeMap<String, i32>> {
    file.message_type
        .iter()
        .map(|m| {
            let fields = m
                .field
                .iter()
                .map(|f| (f.name().to_owned(), f.number()))
                .collect();
            (m.name().to_owned(), fields)
        })
        .collect()
}

#[test]
fn package_is_versioned() {
    assert_eq!(compiled().package(), "concord.v1");
}

#[test]
fn field_numbers_are_stable() {
    let pinned: &[(&str, &[(&str, i32)])] = &[
        ("Dot", &[("region", 1), ("counter", 2)]),
        ("VersionEntry", &[("region", 1), ("counter", 2)]),
        ("VersionVector", &[("entries", 1)]),
        ("CounterTotals", &[("incremented", 1), ("decremented", 2)]),
        ("SetValue", &[("value", 1)]),
        ("DeleteValue", &[]),
        ("Resolution", &[("value", 2), ("resolves", 3)]),
        (
            "TaggedWrite",
            &[
                ("id", 1),
                ("origin", 2),
                ("seq", 3),
                ("hlc", 4),
                ("wall_micros", 5),
                ("collection", 6),
                ("key", 7),
                ("context", 8),
                ("epoch", 9),
                ("dot", 10),
                ("policy", 11),
                ("set", 20),
                ("delete", 21),
                ("counter", 22),
                ("resolution", 23),
                ("withheld", 24),
                ("configure", 25),
                ("ownership", 26),
            ],
        ),
        ("WriteRef", &[("origin", 1), ("seq", 2)]),
        (
            "CollectionSettings",
            &[
                ("policy", 1),
                ("replication", 2),
                ("max_siblings", 3),
                ("skew_action", 4),
                ("owned", 5),
            ],
        ),
        ("OwnershipChange", &[("epoch", 1), ("map", 2)]),
        (
            "WriteConcern",
            &[("level", 1), ("regions", 2), ("timeout_ms", 3)],
        ),
        ("WriteResponse", &[("token", 1), ("durable_in", 2)]),
        (
            "PutRequest",
            &[
                ("collection", 1),
                ("key", 2),
                ("value", 3),
                ("context", 4),
                ("concern", 5),
            ],
        ),
        (
            "DeleteRequest",
            &[
                ("collection", 1),
                ("key", 2),
                ("context", 3),
                ("concern", 4),
            ],
        ),
        (
            "IncrementRequest",
            &[("collection", 1), ("key", 2), ("delta", 3), ("concern", 4)],
        ),
        (
            "GetRequest",
            &[("collection", 1), ("key", 2), ("after", 3), ("wait_ms", 4)],
        ),
        (
            "GetResponse",
            &[
                ("missing", 1),
                ("value", 2),
                ("siblings", 3),
                ("counter", 4),
            ],
        ),
        (
            "Version",
            &[
                ("value", 1),
                ("write", 2),
                ("origin", 3),
                ("hlc", 4),
                ("wall_micros", 5),
            ],
        ),
        (
            "WriteItem",
            &[
                ("collection", 1),
                ("key", 2),
                ("put", 3),
                ("delete", 4),
                ("increment", 5),
                ("context", 6),
            ],
        ),
        ("WriteManyRequest", &[("writes", 1), ("concern", 2)]),
        (
            "WriteManyResponse",
            &[("first", 1), ("count", 2), ("durable_in", 3)],
        ),
        (
            "Hello",
            &[("region", 1), ("region_name", 2), ("durable", 3)],
        ),
        ("Ack", &[("applied", 1), ("durable", 2), ("batches", 3)]),
        ("Heartbeat", &[("heads", 1), ("now_micros", 2)]),
        (
            "PeerFrame",
            &[
                ("hello", 1),
                ("batch", 2),
                ("ack", 3),
                ("rewind", 4),
                ("heartbeat", 5),
                ("snapshot_request", 6),
                ("snapshot", 7),
            ],
        ),
        (
            "WriteBatch",
            &[("origin", 1), ("first_seq", 2), ("writes", 3)],
        ),
        (
            "LoserRecord",
            &[
                ("id", 1),
                ("collection", 2),
                ("key", 3),
                ("loser", 4),
                ("winner", 5),
                ("at_micros", 6),
            ],
        ),
        (
            "ListLosersRequest",
            &[("collection", 1), ("key", 2), ("after_id", 3), ("limit", 4)],
        ),
        ("ListLosersResponse", &[("losers", 1), ("more", 2)]),
    ];
    let actual = field_numbers(&compiled());
    for (message, fields) in pinned {
        let got = actual
            .get(*message)
            .unwrap_or_else(|| panic!("message {message} is missing from the contract"));
        for (field, number) in *fields {
            assert_eq!(
                got.get(*field),
                Some(number),
                "{message}.{field} must keep field number {number}"
            );
        }
    }
}

#[test]
fn tagged_write_ops_form_one_oneof() {
    let file = compiled();
    let tw = file
        .message_type
        .iter()
        .find(|m| m.name() == "TaggedWrite")
        .expect("TaggedWrite");
    let op_index = tw
        .oneof_decl
        .iter()
        .position(|o| o.name() == "op")
        .expect("oneof op");
    let in_op: Vec<&str> = tw
        .field
        .iter()
        .filter(|f| f.oneof_index == Some(i32::try_from(op_index).expect("small")))
        .map(|f| f.name())
        .collect();
    assert_eq!(
        in_op,
        [
            "set",
            "delete",
            "counter",
            "resolution",
            "withheld",
            "configure",
            "ownership"
        ]
    );
}

#[test]
fn resolution_field_one_stays_reserved() {
    let file = compiled();
    let resolution = file
        .message_type
        .iter()
        .find(|m| m.name() == "Resolution")
        .expect("Resolution");
    assert!(
        resolution
            .reserved_range
            .iter()
            .any(|r| r.start() <= 1 && 1 < r.end()),
        "Resolution keeps field 1 reserved"
    );
}

#[test]
fn services_keep_their_methods() {
    let file = compiled();
    let methods = |name: &str| -> Vec<String> {
        file.service
            .iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("service {name}"))
            .method
            .iter()
            .map(|m| m.name().to_owned())
            .collect()
    };
    let client = methods("Concord");
    for m in [
        "Put",
        "Get",
        "Delete",
        "Increment",
        "WriteMany",
        "ListConflicts",
        "WatchConflicts",
        "ResolveConflict",
        "Status",
        "Owner",
        "Takeover",
        "Handoff",
        "ListLosers",
    ] {
        assert!(client.iter().any(|x| x == m), "Concord.{m} is missing");
    }
    assert_eq!(methods("Peer"), ["Replicate", "Snapshot"]);
}
