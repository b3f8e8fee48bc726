package imaging_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"golang.org/x/image/bmp"

	nimbus "github.com/nimbus-ml/nimbus/runtime"
	"github.com/nimbus-ml/nimbus/runtime/imaging"
)

func sample(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), 90, 255})
		}
	}
	return img
}

func encode(t *testing.T, enc func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := enc(&buf, sample(40, 30)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pngHeader is a PNG signature and IHDR chunk claiming w x h, with no pixels.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestDecode(t *testing.T) {
	t.Parallel()
	jpg := encode(t, func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) })
	tests := []struct {
		name     string
		data     []byte
		wantCode string
		wantFmt  string
	}{
		{"jpeg", jpg, "", "jpeg"},
		{"png", encode(t, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }), "", "png"},
		{"gif", encode(t, func(b *bytes.Buffer, m image.Image) error { return gif.Encode(b, m, nil) }), "", "gif"},
		{"bmp", encode(t, func(b *bytes.Buffer, m image.Image) error { return bmp.Encode(b, m) }), "", "bmp"},
		{"empty", nil, nimbus.EINVALID, ""},
		{"text renamed .jpg", []byte("hello, I am not a picture\n"), nimbus.EUNSUPPORTED, ""},
		{"truncated jpeg", jpg[:len(jpg)/2], nimbus.EUNDECODABLE, ""},
		{"jpeg magic only", []byte{0xFF, 0xD8, 0xFF, 0xE0}, nimbus.EUNDECODABLE, ""},
		{"png bomb header", pngHeader(20000, 20000), nimbus.ETOOLARGE, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := imaging.Decode(tc.data, 40_000_000)
			if got := nimbus.ErrorCode(err); got != tc.wantCode {
				t.Fatalf("Decode error %v has code %q, want %q", err, got, tc.wantCode)
			}
			if tc.wantCode != "" {
				return
			}
			if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 30 {
				t.Fatalf("decoded %v, want 40x30", b)
			}
			info, _ := imaging.Check(tc.data, 40_000_000)
			if info.Format.Name != tc.wantFmt {
				t.Fatalf("format %q, want %q", info.Format.Name, tc.wantFmt)
			}
		})
	}
}
