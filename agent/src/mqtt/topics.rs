//! The agent's topics under `<prefix>/<device_id>/` and Home Assistant's.
//! Pure: names in, names out.

pub const HA_STATUS: &str = "homeassistant/status";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    base: String,
    device_id: String,
}

impl Topics {
    pub fn new(prefix: &str, device_id: &str) -> Self {
        Self {
            base: format!("{prefix}/{device_id}"),
            device_id: device_id.to_owned(),
        }
    }

    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    pub fn state(&self) -> String {
        format!("{}/state", self.base)
    }

    /// What the agent subscribes to for commands.
    pub fn commands(&self) -> String {
        format!("{}/cmd/+", self.base)
    }

    pub fn command(&self, name: &str) -> String {
        format!("{}/cmd/{name}", self.base)
    }

    pub fn reply(&self, name: &str) -> String {
        format!("{}/reply/{name}", self.base)
    }

    /// The command a topic names, if it is one of ours.
    pub fn command_name<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let rest = topic.strip_prefix(self.base.as_str())?;
        let name = rest.strip_prefix("/cmd/")?;
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }

    /// Home Assistant device-based discovery.
    pub fn discovery(&self) -> String {
        format!("homeassistant/device/{}/config", self.device_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let t = Topics::new("streamswitch", "edge-01");
        assert_eq!(t.availability(), "streamswitch/edge-01/availability");
        assert_eq!(t.command_name(&t.command("record")), Some("record"));
        assert_eq!(t.command_name("streamswitch/edge-01/cmd/"), None);
        assert_eq!(t.command_name("streamswitch/edge-02/cmd/x"), None);
        assert_eq!(t.command_name("streamswitch/edge-01/cmd/a/b"), None);
        assert_eq!(t.reply("status"), "streamswitch/edge-01/reply/status");
        assert_eq!(t.discovery(), "homeassistant/device/edge-01/config");
    }
}
