"""`usage` figures: input tokens from the model's tokenizer, output tokens from OpenAI's table."""

from __future__ import annotations

from pixelsmith.api.protocol import ImageUsage, InputTokensDetails, OutputTokensDetails
from pixelsmith.service.plans import ImagePlan

# Output image tokens per image, from OpenAI's published gpt-image-1 pricing table
# (quality x size). Other sizes scale the 1024x1024 figure by area.
OUTPUT_TOKENS_PER_IMAGE = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}


def output_tokens_per_image(width: int, height: int, tier: str) -> int:
    # OpenAI publishes no figures for xhigh and max: they count as high.
    table = OUTPUT_TOKENS_PER_IMAGE["high" if tier in ("xhigh", "max") else tier]
    exact = table.get(f"{width}x{height}")
    if exact is not None:
        return exact
    return max(1, round(table["1024x1024"] * width * height / (1024 * 1024)))


def image_usage(plan: ImagePlan, *, prompt_tokens: int, count: int) -> ImageUsage:
    """The usage of `count` images of `plan`, whose prompt read `prompt_tokens` tokens."""
    output = output_tokens_per_image(plan.size.width, plan.size.height, plan.quality_tier) * count
    # Input images count as image tokens, estimated with the low tier of OpenAI's table.
    image_tokens = sum(
        output_tokens_per_image(image.width, image.height, "low") for image in plan.inputs
    )
    input_total = prompt_tokens + image_tokens
    return ImageUsage(
        input_tokens=input_total,
        input_tokens_details=InputTokensDetails(
            text_tokens=prompt_tokens, image_tokens=image_tokens
        ),
        output_tokens=output,
        output_tokens_details=OutputTokensDetails(image_tokens=output, text_tokens=0),
        total_tokens=input_total + output,
    )
