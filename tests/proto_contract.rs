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
            ],
        ),
        (
            "WriteBatch",
            &[("origin", 1), ("first_seq", 2), ("writes", 3)],
        ),
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
        ["set", "delete", "counter", "resolution", "withheld"]
    );
}
