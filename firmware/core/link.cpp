#include "link.h"

#include <string.h>

#include "url.h"

namespace isobox {

Link::Link(Clock& clock, Random& rnd, Transport& transport, RelayBank& relays,
           LinkListener* listener)
    : clock_(clock),
      transport_(transport),
      relays_(relays),
      listener_(listener),
      backoff_(rnd),
      parser_(*this) {}

bool Link::Fits(const char* host, uint16_t port, bool secure, const char* channel,
                const char* device) {
  char url[ISOBOX_FW_URL_MAX + 1];
  char mid[kMidLen + 1];
  memset(mid, '9', kMidLen);  // the longest mid (every mid is kMidLen digits)
  mid[kMidLen] = '\0';
  return BuildSubscribeUrl(Endpoint{host, port, secure}, channel, mid, url, sizeof url, device) != 0;
}

bool Link::SetDeviceId(const char* id) {
  if (id == nullptr || *id == '\0') {
    device_[0] = '\0';
    return true;
  }
  if (!IsDeviceId(id) || (configured_ && !Fits(host_, port_, secure_, channel_, id))) return false;
  strcpy(device_, id);
  return true;
}

bool Link::Configure(const char* host, uint16_t port, const char* channel, bool replayFromStart,
                     bool secure) {
  if (host == nullptr || strlen(host) > ISOBOX_FW_HOST_MAX) return false;
  if (!Fits(host, port, secure, channel, device_)) return false;
  strcpy(host_, host);
  port_ = port;
  secure_ = secure;
  strcpy(channel_, channel);
  if (replayFromStart) {
    memset(mid_, '0', kMidLen);
    mid_[kMidLen] = '\0';
  } else {
    mid_[0] = '\0';
  }
  configured_ = true;
  return true;
}

void Link::SetNetwork(bool up) {
  network_ = up;
  if (up) {
    if (state_ == State::kIdle) Wait(0);
    return;
  }
  if (state_ == State::kOpen) backoff_.Disconnected(clock_.NowMs());
  if (state_ == State::kOpen || state_ == State::kConnecting) transport_.Close();
  parser_.Reset();
  state_ = State::kIdle;
}

void Link::Wait(uint32_t ms) {
  state_ = State::kWaiting;
  since_ = clock_.NowMs();
  wait_ms_ = ms;
}

void Link::Tick() {
  if (!network_ || !configured_) return;
  uint32_t now = clock_.NowMs();
  if (state_ == State::kConnecting && now - since_ >= ISOBOX_FW_CONNECT_TIMEOUT_MS) {
    transport_.Close();
    Retry();
    return;
  }
  if (state_ == State::kOpen && now - heard_ >= ISOBOX_FW_SILENCE_MS) {
    // Open but silent: eventrelay pings every 45 s and answers the
    // heartbeat, so this connection is dead in a way the socket did not
    // notice. A failure, like a dropped connection.
    ++stats_.silences;
    backoff_.Disconnected(now);
    transport_.Close();
    parser_.Reset();
    Retry();
    return;
  }
  if (state_ != State::kWaiting || now - since_ < wait_ms_) return;
  if (BuildSubscribeUrl(Endpoint{host_, port_, secure_}, channel_, mid_, url_, sizeof url_, device_) == 0 ||
      !transport_.Open(url_)) {
    Retry();
    return;
  }
  state_ = State::kConnecting;
  since_ = now;
}

void Link::OnOpen() {
  if (state_ != State::kConnecting) return;
  state_ = State::kOpen;
  key_refused_ = false;
  heard_ = clock_.NowMs();
  parser_.Reset();
  backoff_.Connected(clock_.NowMs());
  ++stats_.connects;
}

void Link::OnClose() {
  if (state_ != State::kOpen && state_ != State::kConnecting) return;
  if (state_ == State::kOpen) backoff_.Disconnected(clock_.NowMs());
  parser_.Reset();
  Retry();
}

void Link::OnMessage(const char* json, size_t n) {
  ParseError err = ParseMessage(json, n, &msg_);
  if (err == ParseError::kBadJson || err == ParseError::kBadMid) {
    ++stats_.rejected;
    return;
  }
  const Command& cmd = msg_.command;
  if (msg_.mid[0] != '\0') {
    // A gap notice carries the mid to resume from, which is lower than ours
    // after a history reset (new stream): follow it. Otherwise mids only
    // grow, and anything at or below the last one was applied already.
    // A channel renewal is idempotent and is never dropped: eventrelay
    // repeats the portal's channel_expire to a subscriber of a renewed
    // channel with the mid it resumes from, so that it misses nothing on
    // the new channel; its mid is adopted only when newer.
    bool gap = err == ParseError::kOk && cmd.kind == CommandKind::kHistoryGap;
    bool renewal = err == ParseError::kOk && cmd.kind == CommandKind::kChannelRenew;
    bool newer = mid_[0] == '\0' || strcmp(msg_.mid, mid_) > 0;
    if (!gap && !renewal && !newer) {
      ++stats_.duplicates;
      return;
    }
    if (gap || newer) memcpy(mid_, msg_.mid, sizeof mid_);
  }
  if (err != ParseError::kOk) {
    ++stats_.rejected;
    return;
  }
  switch (cmd.kind) {
    case CommandKind::kRelay: {
      ApplyResult r = relays_.Apply(cmd.device, cmd.on);
      if (r.matched == 0) {
        ++stats_.unknown_device;
        break;
      }
      ++stats_.applied;
      if (listener_ != nullptr) listener_->OnRelayCommand(cmd.device, cmd.on, r.changed);
      break;
    }
    case CommandKind::kChannelRenew:
      if (strcmp(cmd.channel, channel_) == 0) break;
      strcpy(channel_, cmd.channel);
      ++stats_.renewals;
      if (listener_ != nullptr) listener_->OnChannelRenewed(channel_);
      if (state_ == State::kOpen) {
        // Not a failure: the portal moved us to a new channel. Reconnect
        // at once, without touching the back-off.
        backoff_.Disconnected(clock_.NowMs());
        transport_.Close();
        parser_.Reset();
        Wait(0);
      }
      break;
    case CommandKind::kHistoryGap:
      // Commands may have been lost; the relays keep their state and the
      // next command sets them. Counted for the status page.
      ++stats_.gaps;
      break;
    case CommandKind::kIgnored:
      break;
  }
}

}  // namespace isobox
