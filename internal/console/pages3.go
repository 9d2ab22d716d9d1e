package console

import (
	"net/http"
	"strings"

	relayv1 "github.com/isobox/isobox/api/isobox/relay/v1"
)

// The push, devices and relay settings pages: eventrelay's RelayOps API.

type pushData struct {
	Channels *relayv1.ListPushChannelsResponse
	Sent     *relayv1.SendTestPushResponse
	// The form as last submitted.
	Channel, Text string
	Public        bool
}

func (c *Console) push(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.push")
	return c.renderPush(w, r, p, pushData{}, http.StatusOK)
}

func (c *Console) renderPush(w http.ResponseWriter, r *http.Request, p *page, d pushData, code int) error {
	ops, ctx, cancel, err := c.relayOps(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	if d.Channels, err = ops.ListPushChannels(ctx, &relayv1.ListPushChannelsRequest{Limit: 500}); err != nil {
		return err
	}
	p.Data = d
	c.render(w, code, "push", p)
	return nil
}

// pushTest sends a test message (admins only, like every POST).
func (c *Console) pushTest(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.push")
	d := pushData{Channel: strings.TrimSpace(r.PostFormValue("channel")), Text: r.PostFormValue("text"), Public: r.PostFormValue("public") == "1"}
	ops, ctx, cancel, err := c.relayOps(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	sent, err := ops.SendTestPush(ctx, &relayv1.SendTestPushRequest{Channel: d.Channel, Public: d.Public, Text: d.Text})
	if err != nil {
		p.Error = grpcMessage(err)
		return c.renderPush(w, r, p, d, http.StatusBadRequest)
	}
	c.record(r, p, "push.test", d.Channel, "")
	d.Sent = sent
	p.Flash = p.Tf("push.sent", sent.Subscribers)
	return c.renderPush(w, r, p, d, http.StatusOK)
}

func (c *Console) devices(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.devices")
	ops, ctx, cancel, err := c.relayOps(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	resp, err := ops.ListDevices(ctx, &relayv1.ListDevicesRequest{Limit: 1000})
	if err != nil {
		return err
	}
	p.Data = resp.Devices
	c.render(w, http.StatusOK, "devices", p)
	return nil
}

func (c *Console) relaySettings(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = p.T("nav.relaysettings")
	ops, ctx, cancel, err := c.relayOps(r.Context())
	if err != nil {
		return err
	}
	defer cancel()
	resp, err := ops.GetSettings(ctx, &relayv1.GetSettingsRequest{})
	if err != nil {
		return err
	}
	p.Data = resp.Settings
	c.render(w, http.StatusOK, "relaysettings", p)
	return nil
}
