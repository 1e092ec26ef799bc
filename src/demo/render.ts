/**
 * Scene → SVG text → PNG bytes with sharp (librsvg). The SVG uses only numbers rounded to 2 decimals and integer
 * colours, so the same scene always gives the same SVG, and sharp gives the same PNG bytes for the same SVG (no
 * timestamps or metadata are written). The PNG is 8-bit RGB (alpha removed: the background covers every pixel).
 */
import sharp from 'sharp';

import { squareHalfSide, triangleVertices, type Rgb, type Scene, type SceneObject } from './scenes.js';

function rgb(c: Rgb): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Fixed 2-decimal formatting (trailing zeros dropped) for stable SVG text. */
function n(v: number): string {
  const s = (Math.round(v * 100) / 100).toFixed(2);
  return s.replace(/\.?0+$/, '') || '0';
}

function objectSvg(o: SceneObject): string {
  const fill = rgb(o.rgb);
  if (o.shape === 'circle') return `<circle cx="${n(o.cx)}" cy="${n(o.cy)}" r="${n(o.r)}" fill="${fill}"/>`;
  if (o.shape === 'square') {
    const h = squareHalfSide(o.r);
    return `<rect x="${n(o.cx - h)}" y="${n(o.cy - h)}" width="${n(2 * h)}" height="${n(2 * h)}" fill="${fill}"/>`;
  }
  const pts = triangleVertices(o.cx, o.cy, o.r).map(([x, y]) => `${n(x)},${n(y)}`).join(' ');
  return `<polygon points="${pts}" fill="${fill}"/>`;
}

/** The scene as an SVG document of width × height pixels. */
export function sceneToSvg(scene: Scene): string {
  const { width: W, height: H, background: bg } = scene;
  // Gradient axis through the centre along `angle`, spanning the image (objectBoundingBox units).
  const a = (bg.angle * Math.PI) / 180;
  const dx = Math.cos(a) / 2;
  const dy = Math.sin(a) / 2;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<defs><linearGradient id="bg" x1="${n(0.5 - dx)}" y1="${n(0.5 - dy)}" x2="${n(0.5 + dx)}" y2="${n(0.5 + dy)}">` +
      `<stop offset="0" stop-color="${rgb(bg.from)}"/><stop offset="1" stop-color="${rgb(bg.to)}"/></linearGradient></defs>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="url(#bg)"/>`,
    ...scene.objects.map(objectSvg),
    '</svg>',
  ];
  return parts.join('\n');
}

/** Render a scene to PNG bytes (8-bit RGB). */
export async function renderScenePng(scene: Scene): Promise<Buffer> {
  return sharp(Buffer.from(sceneToSvg(scene)), { density: 72 })
    .removeAlpha()
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false })
    .toBuffer();
}

/** Render a scene to raw RGB pixels (rows top to bottom, HWC). */
export async function renderSceneRgb(scene: Scene): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(Buffer.from(sceneToSvg(scene)), { density: 72 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`renderSceneRgb: expected 3 channels, got ${info.channels}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}
