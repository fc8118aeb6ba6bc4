# A custom training loop with accelerate 0.2x keywords
from accelerate import Accelerator
from transformers import AutoModelForCausalLM

accelerator = Accelerator(
    mixed_precision="bf16",
    gradient_accumulation_steps=8,
    dispatch_batches=False,  # expect: A101
    even_batches=True,  # expect: A101
)
model = AutoModelForCausalLM.from_pretrained("gpt2")
