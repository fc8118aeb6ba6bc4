# vramdoc plan: QLoRA NF4 r8 all-linear · fp16+fp16 AMP · sdpa · ckpt · liger · paged_adamw_32bit · 1x16 · seq 512
# GPU: 6GB GPU (sm75, assumed), 6.00 GiB. Predicted: 4.98 GiB peak allocated (forward), 5.65 GiB device view, 102 MiB free after a 256 MiB margin.
# Rules behind it: M205, M208, M211, M214, M221, T310 (vramdoc rules show CODE).
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainingArguments
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

model_id = 'meta-llama/Llama-2-7b-hf'
max_seq_length = 512  # tokenize/pack to this length: activation memory assumes it

bnb_config = BitsAndBytesConfig(
    load_in_4bit=True,
    bnb_4bit_quant_type='nf4',  # NF4: 4-bit NormalFloat (M211)
    bnb_4bit_use_double_quant=True,  # 8-bit absmax constants: 0.127 instead of 0.5 bit/param (M211)
    bnb_4bit_compute_dtype=torch.float16,  # matmuls after dequantization
)
model = AutoModelForCausalLM.from_pretrained(
    model_id,
    quantization_config=bnb_config,
    dtype=torch.float16,  # dtype of the unquantized parts
    attn_implementation='sdpa',  # fused SDPA kernel: no s x s score matrix
    device_map={"": 0},  # quantized weights load straight onto GPU 0
)
# upcasts norms, embeddings and head to fp32; turns on gradient checkpointing (M205)
model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
lora_config = LoraConfig(
    r=8,  # adapter rank: r x (in + out) parameters per module
    lora_alpha=16,  # update scaled by alpha/r = 2
    lora_dropout=0.0,
    target_modules='all-linear',  # every linear layer of the blocks (M221)
    task_type='CAUSAL_LM',
)
model = get_peft_model(model, lora_config)
model.print_trainable_parameters()

args = TrainingArguments(
    output_dir='out',
    per_device_train_batch_size=1,  # micro-batch: activation memory scales with it (M214)
    gradient_accumulation_steps=16,  # 1 x 16 = effective batch 16
    activation_checkpointing=True,  # keep one input per layer, recompute in backward (M205)
    fp16=True,  # fp16 autocast with dynamic loss scaling (T310)
    use_liger_kernel=True,  # Liger's fused linear cross-entropy: no b x s x vocab logits (pip install liger-kernel)
    optim='paged_adamw_32bit',  # 32-bit states, paged to CPU under pressure (M208)
    learning_rate=0.0002,  # rule T303
    lr_scheduler_type='constant_with_warmup',  # rule T307
    warmup_steps=0.03,  # rule T305
    max_grad_norm=0.3,  # rule T308
    weight_decay=0.0,
    logging_steps=10,  # watch loss and grad_norm
)
# trainer = Trainer(model=model, args=args, train_dataset=...); trainer.train()
