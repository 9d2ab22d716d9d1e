#include <string.h>

#include <string>

#include "../core/message.h"
#include "check.h"

using isobox::Command;
using isobox::CommandKind;
using isobox::Message;
using isobox::ParseCommand;
using isobox::ParseError;
using isobox::ParseMessage;

namespace {

ParseError Cmd(const std::string& s, Command* c) { return ParseCommand(s.data(), s.size(), c); }
ParseError Msg(const std::string& s, Message* m) { return ParseMessage(s.data(), s.size(), m); }
std::string Name(ParseError e) {
  char buf[16];
  return isobox::flash::Copy(isobox::ParseErrorName(e), buf, sizeof buf);
}

// What eventrelay sends for the blog post's BX24.callMethod('pull.application.event.add',
// {COMMAND:'esp', PARAMS:'{"value":"1"}'}) (trimmed `extra`).
const char* kBlog =
    "{\"id\":7,\"mid\":\"17953984070000000000000007\",\"channel\":\"0123456789abcdef0123456789abcdef\","
    "\"tag\":\"974\",\"time\":\"Mon, 23 Nov 2026 01:46:49 GMT\",\"text\":{\"module_id\":\"application\","
    "\"command\":\"esp\",\"params\":{\"value\":\"1\"},\"extra\":{\"server_time_unix\":1795398407.5}}}";

}  // namespace

TEST(message_blog_command) {
  Message m;
  CHECK(Msg(kBlog, &m) == ParseError::kOk);
  CHECK_STR(m.mid, "17953984070000000000000007");
  CHECK(m.command.kind == CommandKind::kRelay);
  CHECK(m.command.on);
  CHECK_STR(m.command.device, "");
}

TEST(message_esp_with_device_and_value_forms) {
  struct {
    const char* params;
    bool on;
  } ok[] = {{"{\"device\":\"pump\",\"value\":\"1\"}", true}, {"{\"device\":\"pump\",\"value\":\"0\"}", false},
            {"{\"device\":\"pump\",\"value\":1}", true},     {"{\"device\":\"pump\",\"value\":0}", false},
            {"{\"device\":\"pump\",\"value\":true}", true},  {"{\"device\":\"pump\",\"value\":\"off\"}", false},
            {"{\"device\":\"pump\",\"value\":\"on\"}", true}, {"{\"value\":\"false\",\"device\":\"pump\"}", false}};
  for (auto& t : ok) {
    Command c;
    CHECK(Cmd(std::string("{\"module_id\":\"application\",\"command\":\"esp\",\"params\":") + t.params + "}", &c) ==
          ParseError::kOk);
    CHECK(c.kind == CommandKind::kRelay);
    CHECK_STR(c.device, "pump");
    CHECK_EQ(c.on, t.on);
  }
}

TEST(message_esp_refuses_unusable_params) {
  const char* bad[] = {"{\"value\":\"2\"}", "{\"value\":\"\"}", "{\"value\":null}", "{\"value\":[1]}",
                       "{\"value\":1.0}",   "{\"device\":\"x\"}", "{\"device\":5,\"value\":1}",
                       "[]",                "\"1\"",
                       // a device name longer than ISOBOX_FW_NAME_MAX
                       "{\"device\":\"a-name-well-beyond-the-limit-of-thirty-one-bytes\",\"value\":1}"};
  for (const char* p : bad) {
    Command c;
    ParseError e = Cmd(std::string("{\"module_id\":\"application\",\"command\":\"esp\",\"params\":") + p + "}", &c);
    if (e != ParseError::kBadParams) fprintf(stderr, "  params %s -> %s\n", p, Name(e).c_str());
    CHECK(e == ParseError::kBadParams);
    CHECK(c.kind == CommandKind::kIgnored);
  }
  Command c;
  CHECK(Cmd("{\"module_id\":\"application\",\"command\":\"esp\"}", &c) == ParseError::kBadParams);
}

TEST(message_generic_relay_command) {
  Command c;
  CHECK(Cmd("{\"module_id\":\"application\",\"command\":\"relay\",\"params\":{\"relay\":\"fan\",\"state\":\"on\"}}",
            &c) == ParseError::kOk);
  CHECK(c.kind == CommandKind::kRelay);
  CHECK_STR(c.device, "fan");
  CHECK(c.on);
}

TEST(message_channel_expire_reconnect) {
  Command c;
  const char* next = "fb9f7e13dc3d595c5aefe1a0216c27a2.2887eebc6ae160713a732893462dce9d8e23a7b0";
  std::string body = std::string(
                         "{\"module_id\":\"pull\",\"command\":\"channel_expire\",\"params\":{\"action\":\"reconnect\","
                         "\"channel\":{\"id\":\"46a437d2336d4a88e4e9b3cd956ecf45.7910bb25e660bf211fdec15e33c5e25e4c3b644a\","
                         "\"type\":\"shared\"},\"new_channel\":{\"id\":\"") +
                     next + "\",\"start\":\"2017-06-28T09:57:48+02:00\",\"type\":\"shared\"}}}";
  CHECK(Cmd(body, &c) == ParseError::kOk);
  CHECK(c.kind == CommandKind::kChannelRenew);
  CHECK_STR(c.channel, next);
  // get_config (a private channel) or an unsigned new id: nothing to follow.
  CHECK(Cmd("{\"module_id\":\"pull\",\"command\":\"channel_expire\",\"params\":{\"action\":\"get_config\"}}", &c) ==
        ParseError::kOk);
  CHECK(c.kind == CommandKind::kIgnored);
  CHECK(Cmd("{\"module_id\":\"pull\",\"command\":\"channel_expire\",\"params\":{\"action\":\"reconnect\","
            "\"new_channel\":{\"id\":\"fb9f7e13dc3d595c5aefe1a0216c27a2\"}}}",
            &c) == ParseError::kOk);
  CHECK(c.kind == CommandKind::kIgnored);
  CHECK_STR(c.channel, "");
}

TEST(message_control_and_foreign_commands_are_ignored) {
  const char* bodies[] = {"{\"module_id\":\"pull\",\"command\":\"config_expire\",\"params\":{}}",
                          "{\"module_id\":\"pull\",\"command\":\"server_restart\"}",
                          "{\"module_id\":\"im\",\"command\":\"message\",\"params\":{\"value\":1}}",
                          "{\"module_id\":\"pull\",\"command\":\"esp\",\"params\":{\"value\":1}}",
                          "{\"module_id\":\"application\",\"command\":\"a-command-name-longer-than-the-buffer\"}"};
  for (const char* b : bodies) {
    Command c;
    CHECK(Cmd(b, &c) == ParseError::kOk);
    CHECK(c.kind == CommandKind::kIgnored);
  }
  Command c;
  CHECK(Cmd("{\"module_id\":\"isobox\",\"command\":\"history_gap\",\"params\":{\"reason\":\"history_lost\"}}", &c) ==
        ParseError::kOk);
  CHECK(c.kind == CommandKind::kHistoryGap);
}

TEST(message_errors) {
  Message m;
  CHECK(Msg("", &m) == ParseError::kBadJson);
  CHECK(Msg("[]", &m) == ParseError::kBadJson);
  CHECK(Msg("{\"mid\":\"1\",\"text\":{}}", &m) == ParseError::kBadMid);
  CHECK(Msg("{\"mid\":17953984070000000000000007,\"text\":{}}", &m) == ParseError::kBadMid);
  CHECK(Msg("{\"mid\":\"1795398407000000000000000x\",\"text\":{}}", &m) == ParseError::kBadMid);
  CHECK_STR(m.mid, "");
  CHECK(Msg("{\"mid\":\"17953984070000000000000007\"}", &m) == ParseError::kNoText);
  CHECK_STR(m.mid, "17953984070000000000000007");  // still tracked: the message was received
  CHECK(Msg("{\"mid\":\"17953984070000000000000008\",\"text\":\"esp\"}", &m) == ParseError::kNoText);
  CHECK(Msg("{\"text\":{\"command\":\"esp\"}}", &m) == ParseError::kBadCommand);
  CHECK(Msg("{\"text\":{\"module_id\":1,\"command\":\"esp\"}}", &m) == ParseError::kBadCommand);
  CHECK(Msg("{\"text\":{\"module_id\":\"a\",\"command\":\"esp\",\"params\":{\"value\":1}}}", &m) == ParseError::kOk);
  CHECK_STR(m.mid, "");
}

TEST(message_ids) {
  CHECK(isobox::IsMid("00000000000000000000000000"));
  CHECK(!isobox::IsMid("0000000000000000000000000"));
  CHECK(!isobox::IsMid("000000000000000000000000000"));
  CHECK(isobox::IsSignedChannelId("0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef01234567"));
  CHECK(isobox::IsSignedChannelId(
      "0123456789abcdef0123456789abcdef:fedcba9876543210fedcba9876543210.0123456789abcdef0123456789abcdef01234567"));
  CHECK(!isobox::IsSignedChannelId("0123456789abcdef0123456789abcdef"));
  CHECK(!isobox::IsSignedChannelId("0123456789ABCDEF0123456789abcdef.01234567"));
  CHECK(!isobox::IsSignedChannelId("0123456789abcdef0123456789abcdef.0123456"));
  CHECK(!isobox::IsSignedChannelId("0123456789abcdef0123456789abcdef.01234567/x"));
  CHECK(!isobox::IsSignedChannelId("public:0123456789abcdef0123456789abcdef.01234567"));
  CHECK(!isobox::IsSignedChannelId(nullptr));
}

TEST(message_error_names) {
  CHECK_STR(Name(ParseError::kOk).c_str(), "ok");
  CHECK_STR(Name(ParseError::kBadJson).c_str(), "bad_json");
  CHECK_STR(Name(ParseError::kBadParams).c_str(), "bad_params");
  CHECK_STR(Name(static_cast<ParseError>(99)).c_str(), "unknown");
}
