//! A lost GPU device is an error that names it, and the engine recovers by
//! opening a new device (what the page does before retrying).

mod common;

use bertlab::engine::{BackendInfo, GpuReason};
use bertlab::{BackendChoice, EmbedOptions, Engine, Error, Input, Model};
use common::tiny_dir;

#[test]
fn a_lost_device_is_reported_and_recovered() {
    let model = Model::from_dir(&tiny_dir()).unwrap();
    let mut engine = pollster::block_on(Engine::new(model, BackendChoice::Gpu)).unwrap();
    let inputs = [Input::from("Hello, how are you?")];
    let (_, before) = pollster::block_on(engine.embed(&inputs, EmbedOptions::default())).unwrap();

    engine.gpu_context().unwrap().device.destroy();
    match pollster::block_on(engine.embed(&inputs, EmbedOptions::default())) {
        Err(Error::DeviceLost(msg)) => assert!(msg.contains("was lost"), "{msg}"),
        other => panic!("expected a lost device, got {:?}", other.map(|_| ())),
    }

    pollster::block_on(engine.recover_gpu()).unwrap();
    assert!(matches!(engine.backend(), BackendInfo::Gpu { why: GpuReason::Recreated, .. }));
    assert!(engine.backend().to_string().contains("device re-created"));
    let (_, after) = pollster::block_on(engine.embed(&inputs, EmbedOptions::default())).unwrap();
    assert_eq!(before.last_hidden_state, after.last_hidden_state);
}
