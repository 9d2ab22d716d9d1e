#include "message.h"

#include <string.h>

#include "flash.h"
#include "json.h"

namespace isobox {
namespace {

using json::Kind;
using json::Span;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

size_t HexRun(const char* s) {
  size_t n = 0;
  while (IsLowerHex(s[n])) ++n;
  return n;
}

// A relay state: "1"/"0" as in the blog post's PARAMS {"value":"1"}, plus
// numbers, booleans and "on"/"off"/"true"/"false". Anything else is refused
// rather than read as "off", so a typo cannot switch a load.
bool ParseState(Span v, bool* on) {
  switch (json::KindOf(v)) {
    case Kind::True: *on = true; return true;
    case Kind::False: *on = false; return true;
    case Kind::Number:
      if (v.n == 1 && (v.p[0] == '0' || v.p[0] == '1')) {
        *on = v.p[0] == '1';
        return true;
      }
      return false;
    case Kind::String: {
      char s[8];
      if (!json::CopyString(v, s, sizeof s)) return false;
      if (flash::Equals(s, ISOBOX_FSTR("1")) || flash::Equals(s, ISOBOX_FSTR("on")) || flash::Equals(s, ISOBOX_FSTR("true"))) {
        *on = true;
        return true;
      }
      if (flash::Equals(s, ISOBOX_FSTR("0")) || flash::Equals(s, ISOBOX_FSTR("off")) || flash::Equals(s, ISOBOX_FSTR("false"))) {
        *on = false;
        return true;
      }
      return false;
    }
    default: return false;
  }
}

// params of `esp` ({device?, value}) or `relay` ({relay?, state}).
ParseError ParseRelay(Span params, flash::Str nameKey, flash::Str stateKey, Command* out) {
  if (json::KindOf(params) != Kind::Object) return ParseError::kBadParams;
  Span v;
  if (!json::Get(params, stateKey, &v) || !ParseState(v, &out->on)) return ParseError::kBadParams;
  out->device[0] = '\0';
  Span d;
  if (json::Get(params, nameKey, &d) && json::KindOf(d) != Kind::Null) {
    if (!json::CopyString(d, out->device, sizeof out->device)) return ParseError::kBadParams;
  }
  out->kind = CommandKind::kRelay;
  return ParseError::kOk;
}

ParseError ParseText(Span text, Command* out) {
  *out = Command();
  Span module, command, params;
  char mod[24], cmd[24];
  if (!json::Get(text, ISOBOX_FSTR("module_id"), &module) || !json::Get(text, ISOBOX_FSTR("command"), &command) ||
      json::KindOf(module) != Kind::String || json::KindOf(command) != Kind::String) {
    return ParseError::kBadCommand;
  }
  // Longer names are valid but none of ours: leave them ignored.
  if (!json::CopyString(module, mod, sizeof mod) || !json::CopyString(command, cmd, sizeof cmd)) {
    return ParseError::kOk;
  }
  bool hasParams = json::Get(text, ISOBOX_FSTR("params"), &params);
  if (flash::Equals(mod, ISOBOX_FSTR("pull"))) {
    if (flash::Equals(cmd, ISOBOX_FSTR("channel_expire")) && hasParams) {
      Span action, next, id;
      if (json::Get(params, ISOBOX_FSTR("action"), &action) && json::StringEquals(action, ISOBOX_FSTR("reconnect")) &&
          json::Get(params, ISOBOX_FSTR("new_channel"), &next) && json::Get(next, ISOBOX_FSTR("id"), &id) &&
          json::CopyString(id, out->channel, sizeof out->channel) &&
          IsSignedChannelId(out->channel)) {
        out->kind = CommandKind::kChannelRenew;
      } else {
        out->channel[0] = '\0';
      }
    }
    // config_expire, server_restart: the device has no config to reload.
    return ParseError::kOk;
  }
  if (flash::Equals(mod, ISOBOX_FSTR("isobox"))) {
    if (flash::Equals(cmd, ISOBOX_FSTR("history_gap"))) out->kind = CommandKind::kHistoryGap;
    return ParseError::kOk;
  }
  if (flash::Equals(cmd, ISOBOX_FSTR("esp"))) {
    if (!hasParams) return ParseError::kBadParams;
    return ParseRelay(params, ISOBOX_FSTR("device"), ISOBOX_FSTR("value"), out);
  }
  if (flash::Equals(cmd, ISOBOX_FSTR("relay"))) {
    if (!hasParams) return ParseError::kBadParams;
    return ParseRelay(params, ISOBOX_FSTR("relay"), ISOBOX_FSTR("state"), out);
  }
  return ParseError::kOk;
}

}  // namespace

ParseError ParseCommand(const char* s, size_t n, Command* out) {
  Span text;
  if (!json::Parse(s, n, &text) || json::KindOf(text) != Kind::Object) {
    *out = Command();
    return ParseError::kBadJson;
  }
  return ParseText(text, out);
}

ParseError ParseMessage(const char* s, size_t n, Message* out) {
  *out = Message();
  Span root;
  if (!json::Parse(s, n, &root) || json::KindOf(root) != Kind::Object) return ParseError::kBadJson;
  Span mid;
  if (json::Get(root, ISOBOX_FSTR("mid"), &mid)) {
    if (!json::CopyString(mid, out->mid, sizeof out->mid) || !IsMid(out->mid)) {
      out->mid[0] = '\0';
      return ParseError::kBadMid;
    }
  }
  Span text;
  if (!json::Get(root, ISOBOX_FSTR("text"), &text) || json::KindOf(text) != Kind::Object) {
    return ParseError::kNoText;
  }
  return ParseText(text, &out->command);
}

bool IsSignedChannelId(const char* s) {
  if (s == nullptr || HexRun(s) != 32) return false;
  s += 32;
  if (*s == ':') {
    if (HexRun(s + 1) != 32) return false;
    s += 33;
  }
  if (*s != '.') return false;
  size_t sig = HexRun(s + 1);
  return sig >= 8 && sig <= 128 && s[1 + sig] == '\0';
}

bool IsMid(const char* s) {
  for (size_t i = 0; i < kMidLen; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return s[kMidLen] == '\0';
}

flash::Str ParseErrorName(ParseError e) {
  // In the enum's order, then one for a value out of range.
  static constexpr char kList[] = "ok\0bad_json\0bad_mid\0no_text\0bad_command\0bad_params\0unknown";
  static constexpr flash::Literal<sizeof kList> kNames ISOBOX_FLASH{kList};
  return flash::Nth(kNames, static_cast<size_t>(e));
}

}  // namespace isobox
