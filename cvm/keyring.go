package cvm

import (
	"context"
	"errors"
	"fmt"
)

// CodeCredentialError is the APIError.Code of a call that was never sent
// because the CredentialProvider failed (no credentials, metadata service
// down with the cached role credentials expired). It reuses the SDK's code;
// Classify reports Fatal: no call can succeed until credentials return.
const CodeCredentialError = "ClientError.CredentialError"

// keyring gives each request of a client the provider's current
// credentials, and sends a call once more when the cloud refused
// credentials that have rotated since they were read.
type keyring struct{ p CredentialProvider }

// call signs and sends one call with send, which must read nothing but the
// credentials it is given. When the cloud refuses them for a reason
// rotation explains and the provider has other credentials by now (or, for
// a Refresher, fetches them), the call is sent once more with those; a
// refusal proves the first request did nothing. It returns the credentials
// of the last request sent, to scrub what the answer echoes.
func (k keyring) call(ctx context.Context, gen Generation, action string, send func(Credentials) error) (Credentials, error) {
	cred, err := k.current(ctx, gen, action)
	if err != nil {
		return Credentials{}, err
	}
	err = send(cred)
	if !rotationExplains(err) {
		return cred, err
	}
	fresh, ferr := k.fresh(ctx, cred)
	if ferr != nil || fresh == cred || fresh.SecretID == "" || fresh.SecretKey == "" {
		return cred, err
	}
	return fresh, send(fresh)
}

// current asks the provider for the credentials of one request.
func (k keyring) current(ctx context.Context, gen Generation, action string) (Credentials, error) {
	c, err := k.p.Credentials(ctx)
	if err == nil && (c.SecretID == "" || c.SecretKey == "") {
		err = fmt.Errorf("%w: the provider returned an empty SecretId or SecretKey", ErrNoCredentials)
	}
	if err == nil {
		return c, nil
	}
	op := string(gen) + " " + action
	if isContextErr(err) && ctx.Err() != nil {
		// The call's own deadline ran out while credentials were fetched:
		// a transport-like failure of this call, not of the account.
		cause := context.Canceled
		if errors.Is(err, context.DeadlineExceeded) {
			cause = context.DeadlineExceeded
		}
		return Credentials{}, &TransportError{Op: op, Err: cause, Sent: false, text: "credentials: " + cause.Error()}
	}
	// Provider errors never hold a secret; clip keeps them one short line.
	return Credentials{}, &APIError{Generation: gen, Action: action, Code: CodeCredentialError, Message: clip(err.Error())}
}

func (k keyring) fresh(ctx context.Context, stale Credentials) (Credentials, error) {
	if r, ok := k.p.(Refresher); ok {
		return r.Refresh(ctx, stale)
	}
	return k.p.Credentials(ctx)
}

// rotationExplains reports whether err is a refusal of the credentials
// that newer credentials of the same identity may cure: an expired or
// unknown token, a temporary SecretId the cloud no longer knows, a key
// that no longer matches it. Clock skew, CAM denials and MFA are not.
func rotationExplains(err error) bool {
	ae, ok := errors.AsType[*APIError](err)
	if !ok {
		return false
	}
	switch ae.Code {
	case "AuthFailure", "AuthFailure.TokenFailure", "AuthFailure.SecretIdNotFound",
		"AuthFailure.InvalidSecretId", "AuthFailure.SignatureFailure",
		"UnauthorizedOperation.InvalidToken",
		"V2.4100", "V2.4104": // v2 auth failure / SecretId not found, without codeDesc
		return true
	}
	return false
}
