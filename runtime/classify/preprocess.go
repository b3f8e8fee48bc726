package classify

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Preprocess is torchvision's ImageNet evaluation transform: resize so the
// shorter side is ResizeShorter (bilinear, antialiased as PIL does), centre
// crop Crop x Crop, scale to [0,1], normalise per channel, lay out as NCHW.
type Preprocess struct {
	ResizeShorter int
	Crop          int
	Mean, Std     [3]float32
}

// ImageNetPreprocess is the transform the default model was trained with.
func ImageNetPreprocess() Preprocess {
	return Preprocess{
		ResizeShorter: 256, Crop: 224,
		Mean: [3]float32{0.485, 0.456, 0.406},
		Std:  [3]float32{0.229, 0.224, 0.225},
	}
}

// Validate reports settings that cannot work.
func (p Preprocess) Validate() error {
	if p.Crop <= 0 || p.ResizeShorter < p.Crop {
		return fmt.Errorf("preprocessing needs 0 < crop (%d) <= resize (%d)", p.Crop, p.ResizeShorter)
	}
	for c, s := range p.Std {
		if s <= 0 {
			return fmt.Errorf("preprocessing std[%d] = %v must be positive", c, s)
		}
	}
	return nil
}

// TensorLen is the number of floats one image becomes.
func (p Preprocess) TensorLen() int { return 3 * p.Crop * p.Crop }

// taps are one output pixel's source range and normalised filter weights.
type taps struct {
	first   int
	weights []float32
}

// resampleTaps computes PIL's antialiased bilinear coefficients for the output
// positions [from, from+n) of an inSize -> outSize resize: the triangle filter
// widens with the downscale factor so every source pixel contributes.
func resampleTaps(inSize, outSize, from, n int) []taps {
	scale := float64(inSize) / float64(outSize)
	filterScale := math.Max(scale, 1)
	support := filterScale // the bilinear filter's support is 1
	out := make([]taps, n)
	for i := range n {
		center := (float64(from+i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), inSize)
		w := make([]float32, hi-lo)
		var sum float64
		ws := make([]float64, hi-lo)
		for j := range ws {
			x := math.Abs((float64(lo+j) - center + 0.5) / filterScale)
			if x < 1 {
				ws[j] = 1 - x
			}
			sum += ws[j]
		}
		for j := range ws {
			if sum > 0 {
				w[j] = float32(ws[j] / sum)
			}
		}
		out[i] = taps{first: lo, weights: w}
	}
	return out
}

// Into writes img's tensor into dst, which must hold TensorLen floats.
func (p Preprocess) Into(img image.Image, dst []float32) error {
	if len(dst) != p.TensorLen() {
		return fmt.Errorf("tensor buffer holds %d floats, want %d", len(dst), p.TensorLen())
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image has no pixels")
	}
	// torchvision: the shorter side becomes S, the longer int(S*long/short).
	rw, rh := p.ResizeShorter, p.ResizeShorter
	if w < h {
		rh = int(float64(p.ResizeShorter) * float64(h) / float64(w))
	} else if h < w {
		rw = int(float64(p.ResizeShorter) * float64(w) / float64(h))
	}
	c := p.Crop
	top := int(math.RoundToEven(float64(rh-c) / 2))
	left := int(math.RoundToEven(float64(rw-c) / 2))
	xt := resampleTaps(w, rw, left, c)
	yt := resampleTaps(h, rh, top, c)

	// Only source rows and columns that reach the crop are converted.
	y0, y1 := yt[0].first, yt[c-1].first+len(yt[c-1].weights)
	x0, x1 := xt[0].first, xt[c-1].first+len(xt[c-1].weights)
	src := toRGB(img, image.Rect(b.Min.X+x0, b.Min.Y+y0, b.Min.X+x1, b.Min.Y+y1))
	sw := x1 - x0

	// Horizontal pass: every needed source row becomes c RGB floats.
	rows := make([]float32, (y1-y0)*c*3)
	for y := range y1 - y0 {
		srow := src[y*sw*3 : (y+1)*sw*3]
		drow := rows[y*c*3 : (y+1)*c*3]
		for x, t := range xt {
			var r, g, bl float32
			base := (t.first - x0) * 3
			for k, wt := range t.weights {
				s := srow[base+3*k : base+3*k+3]
				r += wt * float32(s[0])
				g += wt * float32(s[1])
				bl += wt * float32(s[2])
			}
			drow[3*x], drow[3*x+1], drow[3*x+2] = r, g, bl
		}
	}
	// Vertical pass, then scale, normalise and write planes.
	plane := c * c
	var scale, shift [3]float32
	for ch := range 3 {
		scale[ch] = 1 / (255 * p.Std[ch])
		shift[ch] = p.Mean[ch] / p.Std[ch]
	}
	for y, t := range yt {
		for x := range c {
			var acc [3]float32
			for k, wt := range t.weights {
				s := rows[((t.first-y0+k)*c+x)*3:]
				acc[0] += wt * s[0]
				acc[1] += wt * s[1]
				acc[2] += wt * s[2]
			}
			i := y*c + x
			for ch := range 3 {
				// PIL rounds and clamps to 8 bits after resizing.
				v := float32(int32(min(max(acc[ch], 0), 255) + 0.5))
				dst[ch*plane+i] = v*scale[ch] - shift[ch]
			}
		}
	}
	return nil
}

// toRGB copies r (in img's coordinates) into packed 8-bit RGB, with fast paths
// for what the decoders return.
func toRGB(img image.Image, r image.Rectangle) []uint8 {
	w, h := r.Dx(), r.Dy()
	out := make([]uint8, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		for y := range h {
			for x := range w {
				yi := m.YOffset(r.Min.X+x, r.Min.Y+y)
				ci := m.COffset(r.Min.X+x, r.Min.Y+y)
				cr, cg, cb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = cr, cg, cb
			}
		}
	case *image.RGBA:
		for y := range h {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			for x := range w {
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.NRGBA:
		// Transparent pixels composite onto black, as PIL's convert("RGB") keeps
		// the colour channels; premultiplying matches the generic path below.
		for y := range h {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			for x := range w {
				a := uint16(row[4*x+3])
				o := (y*w + x) * 3
				out[o] = uint8(uint16(row[4*x]) * a / 255)
				out[o+1] = uint8(uint16(row[4*x+1]) * a / 255)
				out[o+2] = uint8(uint16(row[4*x+2]) * a / 255)
			}
		}
	case *image.Gray:
		for y := range h {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			for x := range w {
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = row[x], row[x], row[x]
			}
		}
	default:
		for y := range h {
			for x := range w {
				cr, cg, cb, _ := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = uint8(cr>>8), uint8(cg>>8), uint8(cb>>8)
			}
		}
	}
	return out
}
