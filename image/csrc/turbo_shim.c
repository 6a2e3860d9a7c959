/*
 * mixtape's C shim over libjpeg-turbo's libjpeg API: encodes one RGB8 buffer as a baseline JPEG
 * (4:2:0, islow DCT, standard Huffman tables, JFIF header only) into memory, for
 * image/src/turbo.rs. Compiled by image/build.rs only with the crate's `libjpeg-turbo` feature.
 *
 * Error handling: libjpeg's default error manager calls exit(). Ours formats the message into the
 * caller's buffer and longjmps back to the setjmp in encode_inner(), so a libjpeg error becomes an
 * error return, never an exit and never a Rust panic. Warnings are dropped rather than printed to
 * stderr (compression has none that matter for a well-formed RGB buffer).
 *
 * setjmp rules: every object that is changed after setjmp and read after a longjmp (the compress
 * struct, the destination buffer) lives in the caller of encode_inner(), not in the function that
 * calls setjmp, so its value after a longjmp is well defined without `volatile`.
 */

#include <setjmp.h>
#include <stddef.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t declared first */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#ifndef LIBJPEG_TURBO_VERSION
#error "jpeglib.h is not libjpeg-turbo's (no LIBJPEG_TURBO_VERSION in jconfig.h): install libjpeg-turbo's development files, or build without the libjpeg-turbo feature"
#endif

#define MIXTAPE_STR(x) #x
#define MIXTAPE_XSTR(x) MIXTAPE_STR(x)

/* One growable output buffer, malloc'd here and freed by mixtape_turbo_free(). */
struct mixtape_dest {
  struct jpeg_destination_mgr pub;
  unsigned char *buf;
  size_t cap;
  size_t len;
};

struct mixtape_err {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char *msg;
  size_t msg_cap;
};

struct mixtape_ctx {
  struct jpeg_compress_struct cinfo;
  struct mixtape_err err;
  struct mixtape_dest dest;
};

static void mixtape_error_exit(j_common_ptr cinfo) {
  struct mixtape_err *err = (struct mixtape_err *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  text[0] = '\0';
  (*cinfo->err->format_message)(cinfo, text);
  if (err->msg != NULL && err->msg_cap > 0) {
    size_t n = strlen(text);
    if (n >= err->msg_cap)
      n = err->msg_cap - 1;
    memcpy(err->msg, text, n);
    err->msg[n] = '\0';
  }
  longjmp(err->jump, 1);
}

static void mixtape_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void mixtape_init_destination(j_compress_ptr cinfo) {
  struct mixtape_dest *dest = (struct mixtape_dest *)cinfo->dest;
  dest->pub.next_output_byte = dest->buf;
  dest->pub.free_in_buffer = dest->cap;
  dest->len = 0;
}

/* Called when the buffer is full (all of it, by the libjpeg contract): double it. */
static boolean mixtape_empty_output_buffer(j_compress_ptr cinfo) {
  struct mixtape_dest *dest = (struct mixtape_dest *)cinfo->dest;
  size_t used = dest->cap;
  size_t cap = dest->cap * 2;
  unsigned char *buf;
  if (cap < dest->cap)
    ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 100);
  buf = (unsigned char *)realloc(dest->buf, cap);
  if (buf == NULL)
    ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 101);
  dest->buf = buf;
  dest->cap = cap;
  dest->pub.next_output_byte = buf + used;
  dest->pub.free_in_buffer = cap - used;
  return TRUE;
}

static void mixtape_term_destination(j_compress_ptr cinfo) {
  struct mixtape_dest *dest = (struct mixtape_dest *)cinfo->dest;
  dest->len = dest->cap - dest->pub.free_in_buffer;
}

static int encode_inner(struct mixtape_ctx *ctx, const unsigned char *pixels, unsigned width,
                        unsigned height, int quality) {
  struct jpeg_compress_struct *cinfo = &ctx->cinfo;
  size_t stride = (size_t)width * 3;
  JSAMPROW rows[16];

  if (setjmp(ctx->err.jump))
    return -1;

  jpeg_create_compress(cinfo);

  ctx->dest.pub.init_destination = mixtape_init_destination;
  ctx->dest.pub.empty_output_buffer = mixtape_empty_output_buffer;
  ctx->dest.pub.term_destination = mixtape_term_destination;
  cinfo->dest = &ctx->dest.pub;

  cinfo->image_width = width;
  cinfo->image_height = height;
  cinfo->input_components = 3;
  cinfo->in_color_space = JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, quality, TRUE);
  /* 4:2:0 (jpeg_set_defaults already chooses it for YCbCr; stated here so it cannot drift). */
  cinfo->comp_info[0].h_samp_factor = 2;
  cinfo->comp_info[0].v_samp_factor = 2;
  cinfo->comp_info[1].h_samp_factor = 1;
  cinfo->comp_info[1].v_samp_factor = 1;
  cinfo->comp_info[2].h_samp_factor = 1;
  cinfo->comp_info[2].v_samp_factor = 1;
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->optimize_coding = FALSE;
  cinfo->arith_code = FALSE;
  cinfo->smoothing_factor = 0;
  cinfo->write_JFIF_header = TRUE;
  cinfo->write_Adobe_marker = FALSE;

  jpeg_start_compress(cinfo, TRUE);
  while (cinfo->next_scanline < cinfo->image_height) {
    JDIMENSION start = cinfo->next_scanline;
    JDIMENSION count = cinfo->image_height - start;
    JDIMENSION i;
    if (count > 16)
      count = 16;
    for (i = 0; i < count; i++)
      /* libjpeg takes non-const rows but only reads the input samples. */
      rows[i] = (JSAMPROW)(pixels + (size_t)(start + i) * stride);
    jpeg_write_scanlines(cinfo, rows, count);
  }
  jpeg_finish_compress(cinfo);
  return 0;
}

/*
 * Encodes `height` rows of `width` RGB8 pixels (3 * width bytes each, no padding) at `quality`
 * (1..=100). `capacity_hint` is the first size of the output buffer (it doubles as needed).
 *
 * Returns 0 and sets *out / *out_len to a malloc'd buffer the caller frees with
 * mixtape_turbo_free(); or returns non-zero, leaves *out NULL, and writes a NUL-terminated message
 * of at most msg_cap bytes (including the NUL) into msg.
 */
int mixtape_turbo_encode_rgb(const unsigned char *pixels, unsigned width, unsigned height,
                             int quality, size_t capacity_hint, unsigned char **out,
                             size_t *out_len, char *msg, size_t msg_cap) {
  /* Lives here, outside encode_inner() which calls setjmp: see the note at the top. */
  struct mixtape_ctx ctx;
  int rc;

  *out = NULL;
  *out_len = 0;
  if (msg != NULL && msg_cap > 0)
    msg[0] = '\0';

  memset(&ctx, 0, sizeof(ctx));
  if (capacity_hint < 4096)
    capacity_hint = 4096;
  ctx.dest.buf = (unsigned char *)malloc(capacity_hint);
  if (ctx.dest.buf == NULL) {
    if (msg != NULL && msg_cap > 0) {
      strncpy(msg, "out of memory for the output buffer", msg_cap - 1);
      msg[msg_cap - 1] = '\0';
    }
    return 1;
  }
  ctx.dest.cap = capacity_hint;

  ctx.cinfo.err = jpeg_std_error(&ctx.err.pub);
  ctx.err.pub.error_exit = mixtape_error_exit;
  ctx.err.pub.output_message = mixtape_output_message;
  ctx.err.msg = msg;
  ctx.err.msg_cap = msg_cap;

  rc = encode_inner(&ctx, pixels, width, height, quality);
  /* Safe after a failed or partial jpeg_create_compress: it nulls cinfo.mem before anything can
   * fail, and ctx starts zeroed. */
  jpeg_destroy_compress(&ctx.cinfo);
  if (rc == 0) {
    *out = ctx.dest.buf;
    *out_len = ctx.dest.len;
  } else {
    free(ctx.dest.buf);
  }
  return rc;
}

void mixtape_turbo_free(unsigned char *buf) { free(buf); }

/* The libjpeg-turbo version of the headers this shim was compiled against. */
const char *mixtape_turbo_version(void) { return MIXTAPE_XSTR(LIBJPEG_TURBO_VERSION); }
