// Package imaging recognises, checks and decodes the image formats Nimbus
// accepts: JPEG, PNG, GIF, BMP and WebP. The web tier uses it to reject bad
// uploads cheaply, reading only headers; workers use it to decode.
package imaging

import (
	"bytes"
	"fmt"
	"image"
	_ "image/gif" // registered for image.Decode
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/webp"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
)

// Format is an accepted image format.
type Format struct {
	Name        string // as image.Decode names it
	ContentType string
	Ext         string
}

var formats = []struct {
	Format
	match func([]byte) bool
}{
	{Format{"jpeg", "image/jpeg", ".jpg"}, func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) }},
	{Format{"png", "image/png", ".png"}, func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }},
	{Format{"gif", "image/gif", ".gif"}, func(b []byte) bool {
		return bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a"))
	}},
	{Format{"bmp", "image/bmp", ".bmp"}, func(b []byte) bool { return bytes.HasPrefix(b, []byte("BM")) && len(b) > 26 }},
	{Format{"webp", "image/webp", ".webp"}, func(b []byte) bool {
		return len(b) > 12 && bytes.HasPrefix(b, []byte("RIFF")) && string(b[8:12]) == "WEBP"
	}},
}

// Sniff recognises the format from the content's magic bytes, never from a
// file name or a client's Content-Type.
func Sniff(data []byte) (Format, error) {
	if len(data) == 0 {
		return Format{}, nimbus.Errorf(nimbus.EINVALID, "the file is empty")
	}
	for _, f := range formats {
		if f.match(data) {
			return f.Format, nil
		}
	}
	return Format{}, nimbus.Errorf(nimbus.EUNSUPPORTED, "unsupported image format: want JPEG, PNG, GIF, BMP or WebP")
}

// Info is what the header says about an image.
type Info struct {
	Format        Format
	Width, Height int
}

// Check sniffs the format and reads the dimensions from the header alone, so
// a decompression bomb is refused before any pixel is decoded.
func Check(data []byte, maxPixels int) (Info, error) {
	f, err := Sniff(data)
	if err != nil {
		return Info{}, err
	}
	cfg, name, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || name != f.Name {
		return Info{}, nimbus.Errorf(nimbus.EUNDECODABLE, "the %s header cannot be read: the file is corrupt or truncated", f.Name)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, nimbus.Errorf(nimbus.EUNDECODABLE, "the %s header gives no size", f.Name)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return Info{}, nimbus.Errorf(nimbus.ETOOLARGE, "the image is %dx%d pixels; at most %d pixels (%.0f megapixels) are accepted",
			cfg.Width, cfg.Height, maxPixels, float64(maxPixels)/1e6)
	}
	return Info{Format: f, Width: cfg.Width, Height: cfg.Height}, nil
}

// Decode checks the header against maxPixels and decodes the image.
func Decode(data []byte, maxPixels int) (image.Image, error) {
	info, err := Check(data, maxPixels)
	if err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, nimbus.Errorf(nimbus.EUNDECODABLE, "decoding %s image: %v", info.Format.Name, err)
	}
	if b := img.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
		return nil, nimbus.Errorf(nimbus.EUNDECODABLE, "decoding %s image: header says %dx%d, pixels are %dx%d",
			info.Format.Name, info.Width, info.Height, b.Dx(), b.Dy())
	}
	return img, nil
}

// String is for logs.
func (i Info) String() string { return fmt.Sprintf("%s %dx%d", i.Format.Name, i.Width, i.Height) }
