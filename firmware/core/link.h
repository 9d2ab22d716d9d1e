// The device's connection to eventrelay: when to (re)connect, which URL
// (channel and last mid), and what each received message does to the
// relays. The shim calls Tick from loop() and forwards transport events;
// everything else happens here, so it runs the same on the host tests.
#ifndef ISOBOX_FW_LINK_H
#define ISOBOX_FW_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "config.h"
#include "frame.h"
#include "message.h"
#include "ports.h"
#include "relays.h"

namespace isobox {

// Things the shim may want to persist or show. Default: nothing.
class LinkListener {
 public:
  // The portal renewed the channel (pull/channel_expire): store the new id
  // so that a reboot does not go back to the expired one.
  virtual void OnChannelRenewed(const char* /*channel*/) {}
  // A relay command was applied (changed = how many outputs switched).
  virtual void OnRelayCommand(const char* /*device*/, bool /*on*/, uint8_t /*changed*/) {}

 protected:
  ~LinkListener() = default;
};

struct LinkStats {
  uint32_t applied = 0;         // relay commands that matched a relay
  uint32_t unknown_device = 0;  // relay commands no relay matched
  uint32_t duplicates = 0;      // mid at or below the last one: dropped
  uint32_t rejected = 0;        // malformed messages and commands
  uint32_t gaps = 0;            // isobox/history_gap notices
  uint32_t renewals = 0;        // channel ids followed
  uint32_t connects = 0;        // connections opened
  uint32_t silences = 0;        // connections dropped by the silence watchdog
  uint32_t key_refusals = 0;    // TLS handshakes refused: eventrelay's key is not the pinned one
};

class Link : private MessageSink {
 public:
  enum class State : uint8_t { kIdle, kWaiting, kConnecting, kOpen };

  Link(Clock& clock, Random& rnd, Transport& transport, RelayBank& relays,
       LinkListener* listener = nullptr);

  // Sets the eventrelay address and the signed channel id; false when
  // malformed. replayFromStart asks, on the first connection after boot,
  // for all stored history (mid 0…0) so the relays come back in their last
  // commanded state after a power cut; off, a fresh boot only gets new
  // commands. secure: wss:// (the transport holds the pinned key and
  // refuses wss:// without one), else ws://.
  // Configure also refuses an address and channel whose longest URL (with
  // a mid and the device name) would not fit ISOBOX_FW_URL_MAX, so that a
  // configured Link never fails to build its URL later.
  bool Configure(const char* host, uint16_t port, const char* channel, bool replayFromStart,
                 bool secure = false);
  // The board's name, sent as device= on every subscribe (DeviceId in
  // device.h), so that eventrelay's devices page keeps one record for it
  // across DHCP addresses and channel renewals. nullptr or "" sends none.
  // False (name unchanged) when it is not IsDeviceId or the configured
  // URL would no longer fit.
  bool SetDeviceId(const char* id);
  const char* device_id() const { return device_; }

  // Wi-Fi came up or went down. Down closes the socket; state is kept.
  void SetNetwork(bool up);
  // Call often (every loop()).
  void Tick();

  // Transport events.
  void OnOpen();
  void OnClose();
  void OnData(const char* data, size_t n) {
    OnAlive();
    parser_.Feed(data, n);
  }
  void OnFrameEnd() { parser_.EndFrame(); }
  // The TLS handshake of the current attempt failed because eventrelay's
  // key is not the pinned one (a re-issued certificate with a new key, or
  // an impostor). Call before OnClose; the attempt counts as a failure and
  // key_refused() stays true until a connection opens.
  void OnKeyRefused() {
    if (state_ != State::kConnecting) return;
    ++stats_.key_refusals;
    key_refused_ = true;
  }
  // The peer showed it is there without a message (a ping or a pong).
  void OnAlive() { heard_ = clock_.NowMs(); }

  State state() const { return state_; }
  const char* last_mid() const { return mid_; }
  const char* channel() const { return channel_; }
  const char* url() const { return url_; }
  bool secure() const { return secure_; }
  // The last attempt was refused for the key (see OnKeyRefused).
  bool key_refused() const { return key_refused_; }
  // Milliseconds until the next attempt while kWaiting.
  uint32_t wait_ms() const { return wait_ms_; }
  const LinkStats& stats() const { return stats_; }
  const FrameStats& frame_stats() const { return parser_.stats(); }

 private:
  void OnMessage(const char* json, size_t n) override;
  void Wait(uint32_t ms);
  void Retry() { Wait(backoff_.NextDelayMs()); }
  // Whether the longest URL of this address, channel and name fits.
  static bool Fits(const char* host, uint16_t port, bool secure, const char* channel,
                   const char* device);

  Clock& clock_;
  Transport& transport_;
  RelayBank& relays_;
  LinkListener* listener_;
  Backoff backoff_;
  FrameParser parser_;
  LinkStats stats_;
  State state_ = State::kIdle;
  bool network_ = false;
  bool configured_ = false;
  bool secure_ = false;
  bool key_refused_ = false;
  uint32_t since_ = 0;     // start of the wait or of the connect attempt
  uint32_t heard_ = 0;     // last sign of life on the open connection
  uint32_t wait_ms_ = 0;
  uint16_t port_ = 0;
  char host_[ISOBOX_FW_HOST_MAX + 1] = {};
  char channel_[ISOBOX_FW_CHANNEL_MAX + 1] = {};
  char mid_[kMidLen + 1] = {};
  char device_[ISOBOX_FW_DEVICE_ID_MAX + 1] = {};
  char url_[ISOBOX_FW_URL_MAX + 1] = {};
  Message msg_;  // decoded message; a member, not a stack local (ESP8266 stack is 4 KiB)
};

}  // namespace isobox

#endif  // ISOBOX_FW_LINK_H
