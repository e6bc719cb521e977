"medrepro.nets: the U-Net level block shared by the EchoNet and ISIC networks."
import torch
from medrepro.nets import conv_block


def n_params(m): return sum(p.numel() for p in m.parameters())


def test_conv_block_count_by_hand():
    assert n_params(conv_block(1, 4, bn=False)) == (9 + 1) * 4 + (36 + 1) * 4
    assert n_params(conv_block(1, 4, bn=True)) == 9 * 4 + 36 * 4 + 4 * 4   # no conv bias; BN weight + bias twice


def test_conv_block_keeps_size():
    assert conv_block(3, 8)(torch.zeros(1, 3, 17, 23)).shape == (1, 8, 17, 23)
